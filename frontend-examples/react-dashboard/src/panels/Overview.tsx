import { useQuery } from "urql";

import { WalletOverviewDocument } from "../gql/graphql";
import { useRefetchOnTick } from "../live";
import { formatUsd } from "../money";

/** The balance (live from balanceChanged once it has pushed), plan and entitlement. */
export function Overview({ liveBalance }: { liveBalance: string | null }) {
  const [result, reexecute] = useQuery({ query: WalletOverviewDocument });
  useRefetchOnTick(reexecute);
  const org = result.data?.viewer.organization;
  const balance = liveBalance ?? org?.wallet.balance.usd ?? null;
  return (
    <section className="overview">
      <h2>Balance</h2>
      <p className="balance" data-testid="balance">
        {balance === null ? "…" : formatUsd(balance)}
      </p>
      {result.error && <p className="error">{result.error.message}</p>}
      {org && (
        <dl>
          <dt>Plan</dt>
          <dd>{org.subscription?.plan.name ?? "none"}</dd>
          {org.subscription && (
            <>
              <dt>Allocation left this period</dt>
              <dd>{formatUsd(org.subscription.allocationRemaining.usd)}</dd>
              <dt>Period ends</dt>
              <dd>{new Date(org.subscription.currentPeriodEnd).toLocaleString()}</dd>
            </>
          )}
          <dt>Bought in the last 28 days</dt>
          <dd>{formatUsd(org.wallet.purchasedLast28Days.usd)}</dd>
          <dt>Monthly spend cap</dt>
          <dd>
            {org.spendCap.monthlyLimit
              ? `${formatUsd(org.spendCap.spentThisMonth.usd)} of ${formatUsd(org.spendCap.monthlyLimit.usd)}`
              : "none"}
          </dd>
          <dt>Auto-reload</dt>
          <dd>
            {org.autoReload.enabled
              ? `${formatUsd(org.autoReload.amount.usd)} below ${formatUsd(org.autoReload.threshold.usd)}`
              : "off"}
          </dd>
          {org.entitlement && (
            <>
              <dt>Unlock tier</dt>
              <dd>
                {org.entitlement.tier}
                {org.entitlement.nextTier &&
                  ` (next: buy ${formatUsd(org.entitlement.nextTier.purchaseNeeded.usd)} more)`}
              </dd>
            </>
          )}
        </dl>
      )}
    </section>
  );
}
