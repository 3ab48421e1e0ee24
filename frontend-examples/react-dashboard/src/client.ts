import { createClient as createWsClient } from "graphql-ws";
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "urql";

import type { Config } from "./config";

/** urql over HTTP for queries and mutations, graphql-ws for subscriptions. */
export function makeClient(config: Config): Client {
  const authorization = `Bearer ${config.token}`;
  const ws = createWsClient({
    url: config.wsUrl,
    connectionParams: { authorization },
    // Reconnects after a dropped connection; balanceChanged then sends the current
    // balance first, so nothing is missed.
    retryAttempts: Infinity,
    shouldRetry: () => true,
  });
  return new Client({
    url: config.httpUrl,
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
