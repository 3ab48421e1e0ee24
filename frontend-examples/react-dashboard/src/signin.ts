import { TOKEN_KEY, apiUrl } from "./config";

/** The demo's sign-in link, `#signin=<code>` (`creditgraph serve --demo` prints it).
 *
 * The code works once, for a few minutes: it is taken out of the address at once (so a
 * reload, a bookmark or a copied URL never carries it), then exchanged at the server
 * that printed it (`POST /console/session`, beside its /graphql) for the demo owner's
 * JWT, kept in this tab's sessionStorage. Resolves to null when there was no code or it
 * was exchanged, else to the server's reason it was refused.
 */
export async function signIn(): Promise<string | null> {
  const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const code = params.get("signin");
  if (code === null) return null;
  const exchangeUrl = new URL("/console/session", apiUrl());
  params.delete("signin");
  const rest = params.toString();
  // replaceState, not a new hash: no hashchange, so main.tsx does not reload the page.
  history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? `#${rest}` : ""));
  try {
    const response = await fetch(exchangeUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code }),
    });
    const body = (await response.json().catch(() => ({}))) as { token?: string; message?: string };
    if (!response.ok || !body.token) return body.message ?? `sign-in failed (HTTP ${response.status})`;
    sessionStorage.setItem(TOKEN_KEY, body.token);
    return null;
  } catch (error) {
    return `sign-in failed: ${String(error)}`;
  }
}
