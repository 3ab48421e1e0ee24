/** Where the dashboard talks to and as whom.
 *
 * The page's hash (`#api=<url>&token=<jwt>`, URL-encoded) wins, so one built dist/ works
 * against any server. The hash never reaches a server (unlike a query string), so neither
 * do tokens in access logs or Referer headers. Else the API is the one named by the
 * `creditgraph-graphql` meta tag, which creditgraph adds when it serves this build at
 * /console/ (its own origin's /graphql), then the build-time VITE_CREDITGRAPH_URL; the
 * token is the one a demo sign-in link got for this tab (`./signin.ts`), then the
 * build-time VITE_CREDITGRAPH_TOKEN.
 */
export interface Config {
  httpUrl: string;
  wsUrl: string;
  token: string;
  stripePublishableKey: string;
}

/** Where a sign-in link's token is kept: this tab only, gone when it closes. */
export const TOKEN_KEY = "creditgraph.token";

function hashParams(hash: string): URLSearchParams {
  return new URLSearchParams(hash.replace(/^#/, ""));
}

/** The GraphQL URL (HTTP), absolute. */
export function apiUrl(hash: string = window.location.hash): string {
  const served = document.querySelector('meta[name="creditgraph-graphql"]')?.getAttribute("content");
  const url =
    hashParams(hash).get("api") ??
    served ??
    import.meta.env.VITE_CREDITGRAPH_URL ??
    "http://localhost:8000/graphql";
  return new URL(url, window.location.href).href;
}

export function readConfig(hash: string = window.location.hash): Config | null {
  const params = hashParams(hash);
  const httpUrl = apiUrl(hash);
  const token =
    params.get("token") ??
    sessionStorage.getItem(TOKEN_KEY) ??
    import.meta.env.VITE_CREDITGRAPH_TOKEN ??
    "";
  if (!httpUrl || !token) return null;
  return {
    httpUrl,
    // Same host, path and port: http -> ws, https -> wss.
    wsUrl: httpUrl.replace(/^http/, "ws"),
    token,
    stripePublishableKey:
      params.get("stripe") ?? import.meta.env.VITE_STRIPE_PUBLISHABLE_KEY ?? "",
  };
}
