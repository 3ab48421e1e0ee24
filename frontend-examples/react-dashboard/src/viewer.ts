import { useQuery } from "urql";

import { ViewerDocument, WalletOverviewDocument, type ViewerRole } from "./gql/graphql";

/** The caller's role, null until known. Panels offer only what it may do; the server
 * decides all the same. */
export function useRole(): ViewerRole | null {
  const [viewer] = useQuery({ query: ViewerDocument });
  return viewer.data?.viewer.role ?? null;
}

export const isAdmin = (role: ViewerRole | null): boolean => role === "OWNER" || role === "ADMIN";

// A plan change, auto-reload's or the cap's mutation invalidates the overview even where
// it held none of their objects yet (no plan before the first change).
const OVERVIEW_CONTEXT = { additionalTypenames: ["PlanSubscription", "AutoReload", "SpendCap"] };

/** The billing header's query, shared (one request) by the panels that show or edit it. */
export function useWalletOverview() {
  return useQuery({ query: WalletOverviewDocument, context: OVERVIEW_CONTEXT });
}

/** The organization's unit, SpendCap.unit from the shared overview: "usd", or "credit"
 * (plan credits: an Amount's `usd` then counts them). Null until known. Every amount of
 * the wallet is shown in it (`formatInUnit`). */
export function useUnit(): string | null {
  const [overview] = useWalletOverview();
  return overview.data?.viewer.organization.spendCap.unit ?? null;
}
