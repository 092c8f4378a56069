/** Upload progress as notes: a line every 2 s and one at the end, with percent and MB/s. */
export function progressNote(note: (s: string) => void): (transferred: number, total: number) => void {
  let started = 0
  let last = 0
  return (transferred, total) => {
    const now = Date.now()
    if (started === 0) started = last = now
    if (transferred < total && now - last < 2000) return
    last = now
    const seconds = (now - started) / 1000
    const rate = seconds > 0 ? `, ${(transferred / 1e6 / seconds).toFixed(1)} MB/s` : ''
    note(
      `upload ${Math.floor((transferred / Math.max(total, 1)) * 100)}% (${(transferred / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB${rate})`
    )
  }
}
