/** The release store's sh scripts (every value a positional parameter), and the gates of its writes. */

export const STORE_SCRIPTS = {
  /** $1 store dir: each releases/*\/meta.json, its path first, records separated by \036. */
  rebuild:
    'for f in "$1"/releases/*/meta.json; do [ -f "$f" ] || continue; printf "%s\\n" "$f"; cat -- "$f"; printf "\\n\\036\\n"; done',
  /** $1 text, $2 temp file, $3 path: written, flushed, renamed in. */
  write:
    'umask 022; printf "%s\\n" "$1" > "$2" || exit 1; sync "$2" 2>/dev/null; mv -f -- "$2" "$3" || { rm -f -- "$2"; exit 1; }'
} as const

/** The gates of the record's one round trip: the new release stored intact, then state.json written. */
export const STORED_GATE = 'stored'
export const SAVED_GATE = 'saved'
/** A copy into the store checked: its rename in needs it. */
export const COPIED_GATE = 'copied'

/** The sha256 of $1 (nothing when missing); exit status 0 only when it is $2 (it opens STORED_GATE). */
export const LANDED =
  String.raw`h=$(sha256sum -- "$1" 2>/dev/null) || exit 1; h=@{h%% *}; echo "$h"; [ "$h" = "$2" ]`.replaceAll(
    '@{',
    '${'
  )
