/** What the run tells people and programs, without GitHub (github.ts is the adapter). */
export * from './outputs.js'
export * from './summary.js'
export * from './charts.js'
export * from './modes.js'
