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

/**
 * Like waitUntil, for changes that usually come fast (a new master starting, an old one exiting):
 * the first polls come soon (10 ms, then doubling) and the interval grows up to intervalMs.
 */
export async function waitUntilSoon<T>(
  timeoutMs: number,
  intervalMs: number,
  fn: (elapsedMs: number) => Promise<T | undefined>
): Promise<T | undefined> {
  const started = Date.now()
  for (let pause = Math.min(10, intervalMs); ; pause = Math.min(pause * 2, intervalMs)) {
    const value = await fn(Date.now() - started)
    if (value !== undefined) return value
    if (Date.now() - started >= timeoutMs) return undefined
    await sleep(pause)
  }
}
