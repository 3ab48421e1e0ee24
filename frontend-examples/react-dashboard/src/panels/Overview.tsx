import { useRefetchOnTick } from "../live";
import { formatInUnit, formatUsd } from "../money";
import { useUnit, useWalletOverview } from "../viewer";

/** The balance (live from balanceChanged once it has pushed), plan and entitlement; the
 * wallet's amounts in the organization's unit, what was paid in dollars. */
export function Overview({ liveBalance }: { liveBalance: string | null }) {
  const [result, reexecute] = useWalletOverview();
  useRefetchOnTick(reexecute);
  const org = result.data?.viewer.organization;
  const unit = useUnit();
  const balance = liveBalance ?? org?.wallet.balance.usd ?? null;
  return (
    <section className="overview">
      <h2>Balance</h2>
      <p className="balance" data-testid="balance">
        {balance === null ? "…" : formatInUnit(balance, unit)}
      </p>
      {result.error && <p className="error">{result.error.message}</p>}
      {org && (
        <dl>
          <dt>Plan</dt>
          <dd>{org.subscription?.plan.name ?? "none"}</dd>
          {org.subscription && (
            <>
              <dt>Allocation left this period</dt>
              <dd>{formatInUnit(org.subscription.allocationRemaining.usd, unit)}</dd>
              <dt>Period ends</dt>
              <dd>{new Date(org.subscription.currentPeriodEnd).toLocaleString()}</dd>
            </>
          )}
          <dt>Bought in the last 28 days</dt>
          <dd>{formatUsd(org.wallet.purchasedLast28Days.usd)}</dd>
          <dt>Monthly spend cap</dt>
          <dd>
            {org.spendCap.monthlyLimit
              ? `${formatInUnit(org.spendCap.spentThisMonth.usd, unit)} of ${formatInUnit(org.spendCap.monthlyLimit.usd, unit)}`
              : "none"}
          </dd>
          <dt>Auto-reload</dt>
          <dd>
            {org.autoReload.enabled
              ? `${formatUsd(org.autoReload.amount.usd)} below ${formatInUnit(org.autoReload.threshold.usd, unit)}`
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
