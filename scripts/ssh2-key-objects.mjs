// An esbuild plugin for scripts/bundle.mjs (and __tests__/ssh2-key-objects.test.ts).
import { readFileSync } from 'node:fs'

// ssh2 without its native part creates a cipher per packet (AES-GCM, ChaCha20-Poly1305) and an
// HMAC per packet (the other ciphers), each from a Buffer key. Node 24's createCipheriv and
// createHmac first test whether the key is a KeyObject or a CryptoKey, and for a Buffer each test
// throws and catches a native error: about 80 % of the cost of a small packet (bench/runner-cost.mjs
// profile). The keys, once derived, are made secret KeyObjects instead (the same bytes, the same
// ciphers: only the test is skipped). Every replacement must match exactly once, so an ssh2 upgrade
// that moves the code fails the bundle rather than silently losing this.
export const SSH2_CRYPTO_KEYS = [
  'this._encKeyMain = enc.cipherKey.slice(0, 32);',
  'this._encKeyPktLen = enc.cipherKey.slice(32);',
  'this._encKey = enc.cipherKey;',
  'this._macKey = enc.macKey;',
  'this._decKeyMain = dec.decipherKey.slice(0, 32);',
  'this._decKeyPktLen = dec.decipherKey.slice(32);',
  'this._decipherKey = dec.decipherKey;',
  'this._macKey = dec.macKey;'
]
export const ssh2KeyObjects = {
  name: 'ssh2-key-objects',
  setup(b) {
    b.onLoad({ filter: /[\\/]ssh2[\\/]lib[\\/]protocol[\\/]crypto\.js$/ }, args => {
      let text = readFileSync(args.path, 'utf8')
      for (const line of SSH2_CRYPTO_KEYS) {
        const n = text.split(line).length - 1
        if (n !== 1) throw new Error(`ssh2-key-objects: expected one "${line}" in ${args.path}, found ${n}`)
        const [lhs, rhs] = line.slice(0, -1).split(' = ')
        text = text.replace(line, `${lhs} = __zdSecretKey(${rhs});`)
      }
      const helper =
        "const __zdSecretKey = k => (Buffer.isBuffer(k) && k.length > 0 ? require('crypto').createSecretKey(k) : k);\n"
      return { contents: helper + text, loader: 'js' }
    })
  }
}
