/** Where the dashboard talks to and as whom.
 *
 * The page's hash (`#api=<url>&token=<jwt>`, URL-encoded) wins over the build-time
 * VITE_CREDITGRAPH_URL / VITE_CREDITGRAPH_TOKEN, so one built dist/ works against any
 * server. The hash never reaches a server (unlike a query string), so neither do tokens
 * in access logs or Referer headers.
 */
export interface Config {
  httpUrl: string;
  wsUrl: string;
  token: string;
  stripePublishableKey: string;
}

export function readConfig(hash: string = window.location.hash): Config | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const httpUrl =
    params.get("api") ?? import.meta.env.VITE_CREDITGRAPH_URL ?? "http://localhost:8000/graphql";
  const token = params.get("token") ?? import.meta.env.VITE_CREDITGRAPH_TOKEN ?? "";
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
