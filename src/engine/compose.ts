/**
 * Slotting steps into a strategy's list, by anchor. An added step without its own report entry
 * reports under the step it sits next to, so the report keeps the strategy's step names.
 */
import type { Step, StepStage } from './step.js'

const under = (step: Step, entry: string): Step => (step.report ? step : { ...step, report: entry })
const entryOf = (step: Step): string => step.report ?? step.name

function at(steps: readonly Step[], index: number, entry: string, add: readonly Step[]): Step[] {
  return [...steps.slice(0, index), ...add.map(s => under(s, entry)), ...steps.slice(index)]
}

function indexOf(steps: readonly Step[], name: string): number {
  const i = steps.findIndex(s => s.name === name)
  if (i < 0) throw new Error(`no step named ${name} to slot steps at`)
  return i
}

/** The steps `add` right after the step `name`, in its report entry. */
export function insertAfter(steps: readonly Step[], name: string, ...add: Step[]): Step[] {
  const i = indexOf(steps, name)
  return at(steps, i + 1, entryOf(steps[i]!), add)
}

/** The steps `add` right before the step `name`, in its report entry. */
export function insertBefore(steps: readonly Step[], name: string, ...add: Step[]): Step[] {
  const i = indexOf(steps, name)
  return at(steps, i, entryOf(steps[i]!), add)
}

/** Before the first step of a stage (in that step's entry); at the end, in the last entry, when none. */
export function beforeStage(steps: readonly Step[], stage: StepStage, ...add: Step[]): Step[] {
  const i = steps.findIndex(s => s.stage === stage)
  if (i < 0) return at(steps, steps.length, entryOf(steps[steps.length - 1]!), add)
  return at(steps, i, entryOf(steps[i]!), add)
}

/** At the very start, in the first step's entry (a lock taken before anything is read). */
export function first(steps: readonly Step[], ...add: Step[]): Step[] {
  return at(steps, 0, entryOf(steps[0]!), add)
}
