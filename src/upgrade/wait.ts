/** Waiting without busy loops: sleep and poll-until. */
export const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms))

/** Polls fn until it returns a value (or the time is up: undefined); fn may throw to fail at once. */
export async function waitUntil<T>(
  timeoutMs: number,
  intervalMs: number,
  fn: (elapsedMs: number) => Promise<T | undefined>
): Promise<T | undefined> {
  const started = Date.now()
  for (;;) {
    const value = await fn(Date.now() - started)
    if (value !== undefined) return value
    if (Date.now() - started >= timeoutMs) return undefined
    await sleep(intervalMs)
  }
}
