/** The undo stack of a host's run, and the rollback that empties it. */
import { ConnectionLostError } from '../host/host.js'
import type { Step, StepContext } from './step.js'

export interface Undo {
  step: Step
  /** The report entry the step ran in. */
  entry: string
}

export class UndoStack {
  private undos: Undo[] = []

  /** Once per step, however many attempts (a step run again after a lost connection pushes it again). */
  push(step: Step, entry: string): void {
    if (step.undo && !this.undos.some(u => u.step === step)) this.undos.push({ step, entry })
  }

  get empty(): boolean {
    return this.undos.length === 0
  }

  /** Whether something that serves changed (an undo of a step past `prepare` and `ready`). */
  get changed(): boolean {
    return this.undos.some(u => u.step.stage !== 'prepare' && u.step.stage !== 'ready')
  }

  clear(): void {
    this.undos = []
  }

  /** The undos in the order they run (last pushed first); the stack is empty afterwards. */
  take(): Undo[] {
    const undos = this.undos.reverse()
    this.undos = []
    return undos
  }
}

/**
 * The rollback's body; run again whole after a lost connection (each undo reads the host first).
 * Every undo runs, even after one failed: the old binary goes back even when the processes could
 * not be restored.
 */
export async function runUndos(
  undos: readonly Undo[],
  changed: boolean,
  ctx: StepContext,
  warn: (m: string) => void
): Promise<void> {
  if (changed) for (const u of undos) await u.step.beforeRollback?.(ctx).catch((e: Error) => warn(e.message))
  const errors: string[] = []
  for (const u of undos) {
    try {
      await u.step.undo!(ctx)
      ctx.note(`undid ${u.step.name}`)
    } catch (e) {
      if (e instanceof ConnectionLostError) throw e
      errors.push(`undo of ${u.step.name} failed: ${(e as Error).message}`)
      ctx.note(errors.at(-1)!)
    }
  }
  if (errors.length > 0) throw new Error(errors.join('; '))
}

/** The rollback as one step of its own report entry; it runs even when the job is cancelled. */
export function rollbackStep(
  entry: string,
  undos: readonly Undo[],
  changed: boolean,
  warn: (m: string) => void
): Step {
  return { name: entry, stage: 'change', onCancel: 'finish', run: ctx => runUndos(undos, changed, ctx, warn) }
}
