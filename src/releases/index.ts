/** The release store: pure state, the rollback target, its files on a host, its steps, its summary. */
export * from './state.js'
export * from './rollback-target.js'
export * from './store.js'
export * from './steps.js'
export * from './markdown.js'
