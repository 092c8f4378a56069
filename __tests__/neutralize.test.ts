/** The functions every remote string passes through before a log line, a terminal or the job summary. */
import { describe, expect, it } from '@jest/globals'
import { markdownText, neutralize, remoteLine, stripTerminal } from '../src/remote-text.js'

describe('neutralize (log lines)', () => {
  it('breaks runner commands at the start of any line, and ##[ anywhere', () => {
    const out = neutralize(
      'ok\n::add-mask::secret\n  ::stop-commands::t\r\n::error title=x::y\nsee ##[error]z'
    )
    expect(out.split('\n')).toEqual([
      'ok',
      ': :add-mask::secret',
      '  : :stop-commands::t',
      ': :error title=x::y',
      'see ## [error]z'
    ])
    expect(out.split('\n').some(l => /^\s*::/.test(l) || l.includes('##['))).toBe(false)
  })
  it('shows control characters as \\xHH (escape sequences, bells, C1)', () => {
    expect(neutralize('a\u001b[31mred\u0007\u009bx\tb')).toBe('a\\x1b[31mred\\x07\\x9bx\tb')
  })
  it('remoteLine keeps one bounded line', () => {
    expect(remoteLine('a\n::warning::b\n', 100)).toBe('a ⏎ : :warning::b')
    expect(remoteLine('x'.repeat(50), 10)).toBe('xxxxxxxxx…')
  })
})

describe('stripTerminal (CLI)', () => {
  it('removes CSI and OSC sequences, shows other controls', () => {
    expect(
      stripTerminal('\u001b[2J\u001b]8;;https://evil\u0007link\u001b]8;;\u0007 \u001b[1mbold\u001b[0m\u0008')
    ).toBe('link bold\\x08')
  })
})

describe('markdownText (job summary)', () => {
  it('shows links, images, emphasis and HTML as text, and breaks autolinks', () => {
    const md = markdownText(
      '![i](https://evil.example/i.png) [a](http://x) **b** <img src=x> www.evil.example | _c_'
    )
    expect(md).not.toMatch(/(?<!\\)\]\(|https:\/\/|http:\/\/|<img|\bwww\.evil/)
    expect(md).toBe(
      '\\!\\[i\\](https&#58;//evil.example/i.png) \\[a\\](http&#58;//x) \\*\\*b\\*\\* &lt;img src=x&gt; www&#46;evil.example \\| \\_c\\_'
    )
  })
})
