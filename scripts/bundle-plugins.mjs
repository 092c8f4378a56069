// The bundle's esbuild plugins that leave parts of dependencies out (scripts/bundle.mjs); a bench
// that bundles a part of src/ uses them too, to measure the code as it ships.
// ssh2's optional native parts (cpu-features, sshcrypto.node) cannot be bundled; ssh2 loads them
// in try/catch and falls back to pure JS, so each is replaced by a module that throws on load.
export const noNative = {
  name: 'no-native',
  setup(b) {
    b.onResolve({ filter: /^cpu-features$|\.node$/ }, args => ({ path: args.path, namespace: 'no-native' }))
    b.onLoad({ filter: /.*/, namespace: 'no-native' }, args => ({
      contents: `throw new Error(${JSON.stringify('native module not bundled: ' + args.path)})`,
      loader: 'js'
    }))
  }
}

// @actions/core imports its OIDC client, whose HTTP client imports undici (767 KB, a third of the
// bundle) for one class, ProxyAgent, used only to fetch an OIDC token through a proxy. The action
// never asks for a token; the class is replaced by one that says so if anything ever constructs it
// (nothing does, so the stub is tree-shaken away; undici, CommonJS, could not be).
export const noUndici = {
  name: 'no-undici',
  setup(b) {
    b.onResolve({ filter: /^undici$/ }, args => ({ path: args.path, namespace: 'no-undici' }))
    b.onLoad({ filter: /.*/, namespace: 'no-undici' }, () => ({
      contents:
        'export class ProxyAgent { constructor() { throw new Error("undici is not bundled: zerodown-action makes no HTTP request through @actions/http-client") } }',
      loader: 'js'
    }))
  }
}
