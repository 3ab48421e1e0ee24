import { useQuery } from "@urql/vue";
import { computed, type ComputedRef } from "vue";

import { UsageSummaryDocument, type Granularity, type UsageSummaryQuery } from "./gql/graphql";
import { onWalletChange } from "./live";

export const SUMMARY_DAYS = 30;

/** The last SUMMARY_DAYS days up to now; the server widens them to whole UTC days. */
export function summaryRange(): { since: string; until: string } {
  const until = new Date();
  const since = new Date(until.getTime() - (SUMMARY_DAYS - 1) * 86_400_000);
  return { since: since.toISOString(), until: until.toISOString() };
}

export interface UsageSummaryState {
  summary: ComputedRef<UsageSummaryQuery["viewer"]["organization"]["usageSummary"] | null>;
  models: ComputedRef<string[]>;
  fetching: ComputedRef<boolean>;
  error: ComputedRef<string | null>;
}

/** The last SUMMARY_DAYS days by day (UTC buckets), shared by the spend chart, the model
 * breakdown and the usage filter's model list; refreshed when the balance moves. */
export function useUsageSummary(): UsageSummaryState {
  const query = useQuery({
    query: UsageSummaryDocument,
    variables: { ...summaryRange(), granularity: "DAY" satisfies Granularity },
  });
  onWalletChange(() => query.executeQuery({ requestPolicy: "network-only" }), 1000);
  const summary = computed(() => query.data.value?.viewer.organization.usageSummary ?? null);
  return {
    summary,
    models: computed(() => (summary.value?.byModel ?? []).map((row) => row.model)),
    fetching: computed(() => query.fetching.value),
    error: computed(() => query.error.value?.message ?? null),
  };
}
