// Generated from package.json by scripts/docs.mjs (npm run docs). Do not edit by hand.

/** The version of zerodown-action this bundle is (what --version prints). */
export const VERSION = '1.0.0'
