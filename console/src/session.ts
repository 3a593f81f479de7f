// Where the console keeps a session so that it survives a page reload (issue 22).
//
// The choice: the access token (a 15-minute bearer JWT, the credential every call carries)
// lives only in the SDK client's memory, never in Web Storage or a cookie. What survives a
// reload is the refresh token, in this tab's sessionStorage (gone when the tab closes, never
// shared with other tabs or sent with any request), and on boot the console spends it at once
// (RefreshToken) for a fresh pair. Why this is acceptable where the access token in storage
// would not be:
//  - refresh tokens rotate and are single-use with reuse detection (RefreshToken in
//    src/api/auth.rs, src/db/credentials.rs): a stolen one is worth one refresh, and as soon as both the thief
//    and this tab have used it, the server ends the whole session (family) for both;
//  - the token in storage is replaced on every rotation (the SDK's `onSession`), so a copy
//    read earlier is already spent;
//  - logout revokes it on the server and removes it here.
// An HttpOnly cookie would hide it from scripts entirely, but the console and the API are
// different origins (the API is reached over grpc-web with CORS, without credentials mode) and
// the console's server does not proxy the API, so a cookie could not reach RefreshToken without
// making the API accept cookie-authenticated cross-origin calls, i.e. opening it to CSRF. The
// CSP (script-src 'self', no inline script) is what keeps injected scripts out in the first
// place. Duplicating a tab copies sessionStorage; the two tabs then race to rotate the same
// token and the loser's refresh ends the session for both (sign in again): safe, if abrupt.
import type { Session } from "@fileorganizer/sdk";

const KEY = "fileorganizer.refreshToken";

/** Keeps the current refresh token (or forgets it when the session ended). */
export function keepSession(session: Session | undefined): void {
  if (session) sessionStorage.setItem(KEY, session.refreshToken);
  else sessionStorage.removeItem(KEY);
}

/** The refresh token kept before a reload, if any. */
export function keptRefreshToken(): string | undefined {
  return sessionStorage.getItem(KEY) ?? undefined;
}

export function forgetSession(): void {
  sessionStorage.removeItem(KEY);
}
