/** Moved: src/engine/types.ts (shapes) and src/engine/step.ts (StepError). Kept while callers move. */
export * from '../engine/types.js'
export { StepError } from '../engine/step.js'
