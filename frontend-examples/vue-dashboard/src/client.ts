import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "@urql/vue";
import { createClient as createWsClient } from "graphql-ws";

import type { Config } from "./config";

// One urql client: queries and mutations over HTTP with the bearer token, subscriptions
// over graphql-ws with the token in connection_init (browsers cannot set WebSocket headers).
export function createCreditgraphClient(config: Config): Client {
  const headers: Record<string, string> = config.token ? { authorization: `Bearer ${config.token}` } : {};
  const ws = createWsClient({
    url: config.wsUrl,
    connectionParams: config.token ? { authorization: `Bearer ${config.token}` } : {},
    // Reconnect after a restart or a network drop for as long as the page is open;
    // graphql-ws itself gives up on fatal closes (a refused token, a protocol error).
    retryAttempts: Infinity,
  });
  return new Client({
    url: config.apiUrl,
    // POST for every operation: GET /graphql from a browser is GraphiQL's page.
    preferGetMethod: false,
    fetchOptions: { headers },
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              return { unsubscribe: ws.subscribe(input, sink) };
            },
          };
        },
      }),
    ],
  });
}
