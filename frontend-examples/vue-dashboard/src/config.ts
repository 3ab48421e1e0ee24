// Where the dashboard's server is and who it calls as: the page's hash
// (#api=<url>&token=<jwt>&stripe=<pk_...>, URL-encoded) first, so one built dist/
// works against any server; else the build's VITE_* variables. Never the query
// string: it reaches server logs and Referer headers, the hash does not.

export interface Config {
  /** GraphQL over HTTP(S), e.g. http://localhost:8000/graphql */
  apiUrl: string;
  /** The same endpoint over WebSocket (graphql-transport-ws). */
  wsUrl: string;
  /** A bearer JWT (the demo prints an owner token); empty when none was given. */
  token: string;
  /** Stripe publishable key for Elements; empty when Stripe is not used. */
  stripePublishableKey: string;
}

export function wsUrlFor(apiUrl: string): string {
  return apiUrl.replace(/^http(s?):/i, "ws$1:");
}

export function readConfig(hash: string = window.location.hash): Config {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const env = import.meta.env;
  const apiUrl = params.get("api") || env.VITE_CREDITGRAPH_URL || "http://localhost:8000/graphql";
  return {
    apiUrl,
    wsUrl: wsUrlFor(apiUrl),
    token: params.get("token") || env.VITE_CREDITGRAPH_TOKEN || "",
    stripePublishableKey: params.get("stripe") || env.VITE_STRIPE_PUBLISHABLE_KEY || "",
  };
}
