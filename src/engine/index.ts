/** The engine's public face: the step model, the runner, the composition helpers. */
export * from './step.js'
export * from './engine.js'
export * from './spec.js'
export * from './compose.js'
export * from './types.js'
