/**
 * Go's strings.Fields and os.Expand, for command lines that upstream runs
 * without a shell (pkg/backend/extension/extension.go: strings.Fields, then
 * os.Expand on each field): a field is split on white space only, and
 * `$NAME` / `${NAME}` are replaced by their values. Quotes, globs, `;` and
 * the rest of the shell's syntax mean nothing, so a value can never become
 * a second command.
 */

/** unicode.IsSpace: the Latin-1 spaces and Unicode's White_Space (not U+FEFF, which JavaScript's \s has). */
const GO_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** strings.Fields: the non-empty runs between white space. */
export function goFields(s: string): string[] {
  return s.split(GO_SPACE).filter((f) => f !== '');
}

/** os.isShellSpecialVar. */
function isShellSpecial(c: string): boolean {
  return '*#$@!?-0123456789'.includes(c);
}

function isAlphaNum(c: string): boolean {
  return /^[A-Za-z0-9_]$/.test(c);
}

/** os.getShellName: the name after a `$`, and how many characters it takes ("" with a width: bad syntax, eaten). */
function shellName(s: string): [string, number] {
  if (s[0] === '{') {
    if (s.length > 2 && isShellSpecial(s[1]!) && s[2] === '}') return [s[1]!, 3];
    for (let i = 1; i < s.length; i++) {
      if (s[i] === '}') return i === 1 ? ['', 2] : [s.slice(1, i), i + 1];
    }
    return ['', 1];
  }
  if (isShellSpecial(s[0]!)) return [s[0]!, 1];
  let i = 0;
  while (i < s.length && isAlphaNum(s[i]!)) i++;
  return [s.slice(0, i), i];
}

/** os.Expand: `$NAME` and `${NAME}` replaced by `lookup(NAME)`; a `$` followed by no name stays. */
export function goExpand(s: string, lookup: (name: string) => string): string {
  let out = '';
  let start = 0;
  for (let j = 0; j < s.length; j++) {
    if (s[j] !== '$' || j + 1 >= s.length) continue;
    out += s.slice(start, j);
    const [name, width] = shellName(s.slice(j + 1));
    if (name === '' && width > 0) {
      // bad syntax: the characters are eaten
    } else if (name === '') {
      out += '$';
    } else {
      out += lookup(name);
    }
    j += width;
    start = j + 1;
  }
  return start === 0 && out === '' ? s : out + s.slice(start);
}
