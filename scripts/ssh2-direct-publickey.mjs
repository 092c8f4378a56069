// An esbuild plugin for scripts/bundle.mjs (and __tests__/ssh-auth.test.ts checks its effect).
import { readFileSync } from 'node:fs'

// ssh2 logs in with a private key in two round trips: it asks whether the server would accept
// the key (a request without a signature), and signs only after the server says yes. With the
// key in hand the signed request can go first (RFC 4252, section 7: the query is optional), as
// one round trip; a server that refuses it answers as it would refuse the query, and ssh2 then
// goes on as before (the next signature algorithm, queried). Over a 150 ms link that is 150 ms
// per connection. The replacement must match exactly once, so an ssh2 upgrade that moves the
// code fails the bundle rather than silently losing this.
export const SSH2_QUERY = 'proto.authPK(username, curAuth.key, keyAlgo);'
export const SSH2_SIGNED = `proto.authPK(username, curAuth.key, keyAlgo, (buf, cb) => {
              const hashAlgo = curAuth.keyAlgos ? curAuth.keyAlgos[0][1] : undefined;
              const signature = curAuth.key.sign(buf, hashAlgo);
              if (signature instanceof Error) {
                signature.message = \`Error signing data with key: \${signature.message}\`;
                signature.level = 'client-authentication';
                this.emit('error', signature);
                return tryNextAuth();
              }
              cb(signature);
            });`

export const ssh2DirectPublickey = {
  name: 'ssh2-direct-publickey',
  setup(b) {
    b.onLoad({ filter: /[\\/]ssh2[\\/]lib[\\/]client\.js$/ }, args => {
      const text = readFileSync(args.path, 'utf8')
      const n = text.split(SSH2_QUERY).length - 1
      if (n !== 1)
        throw new Error(`ssh2-direct-publickey: expected one "${SSH2_QUERY}" in ${args.path}, found ${n}`)
      return { contents: text.replace(SSH2_QUERY, SSH2_SIGNED), loader: 'js' }
    })
  }
}
