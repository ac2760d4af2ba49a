/**
 * Passwords in URLs, found and masked the same way everywhere: error messages, `config show`,
 * `/health`, the catalog's own URL, the secrets `tasklog run` masks in task logs.
 *
 * The userinfo of `scheme://user:password@host` runs to the LAST `@` before the next blank or
 * quote, so a password holding `@`, `/` or `:` is masked whole. That may mask a little more than
 * a password (a path with `@` after a port), never less.
 */
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^\s"'<>`]*)@/gi;

/** `text` with the password of every URL in it replaced by `***`. */
export function maskUrlPasswords(text: string): string {
  return text.replace(URL_USERINFO, (whole, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return colon < 0 ? whole : `${scheme}${userinfo.slice(0, colon)}:***@`;
  });
}

/** The passwords of the URLs in `text`, as written and percent-decoded. */
export function urlPasswords(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(URL_USERINFO)) {
    const userinfo = m[2]!;
    const colon = userinfo.indexOf(':');
    if (colon < 0) continue;
    const password = userinfo.slice(colon + 1);
    if (!password) continue;
    found.add(password);
    try {
      found.add(decodeURIComponent(password));
    } catch {
      // not percent-encoded as written: the raw form is the secret
    }
  }
  return [...found];
}
