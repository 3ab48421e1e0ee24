import { createClient as createWsClient } from "graphql-ws";
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "urql";

import type { Config } from "./config";

/** urql over HTTP for queries and mutations, graphql-ws for subscriptions. */
export function makeClient(config: Config): Client {
  const authorization = `Bearer ${config.token}`;
  const ws = createWsClient({
    url: config.wsUrl,
    connectionParams: { authorization },
    // Reconnects after a dropped connection (not after a refusal, such as a bad token);
    // balanceChanged then sends the current balance first, so nothing is missed.
    retryAttempts: Infinity,
  });
  return new Client({
    url: config.httpUrl,
    // POST (JSON) for queries too: operations stay out of URLs and access logs.
    preferGetMethod: false,
    fetchOptions: { headers: { authorization } },
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
}
