import { useMutation, useQuery } from "urql";

import { Problems } from "../errors";
import { ChangePlanDocument, PlansDocument } from "../gql/graphql";
import { formatInUnit, formatPrice } from "../money";
import { isAdmin, useRole, useUnit, useWalletOverview } from "../viewer";

/** The current plan and the plans of the organization's unit to move to: an upgrade
 * applies at once, a downgrade when the period ends. */
export function Plan() {
  const [overview] = useWalletOverview();
  const [catalog] = useQuery({ query: PlansDocument });
  const [changed, change] = useMutation(ChangePlanDocument);
  const admin = isAdmin(useRole());
  const org = overview.data?.viewer.organization;
  const subscription = org?.subscription ?? null;
  const unit = useUnit();
  // An organization moves only between plans counting its own unit.
  const plans = (catalog.data?.plans ?? []).filter((p) => p.unit === unit);
  const payload = changed.data?.changePlan;
  return (
    <section data-testid="plan">
      <h2>Plan</h2>
      {(overview.error ?? catalog.error) && <p className="error">{(overview.error ?? catalog.error)?.message}</p>}
      <p data-testid="plan-current">
        {subscription ? (
          <>
            <strong>{subscription.plan.name}</strong>, this period ends {new Date(subscription.currentPeriodEnd).toLocaleString()}
            {subscription.nextPlan && <> · then {subscription.nextPlan.name}</>}
          </>
        ) : (
          "No plan: prepaid credits only."
        )}
      </p>
      <table>
        <thead>
          <tr>
            <th>Plan</th>
            <th>Price</th>
            <th>Credits each period</th>
            <th>Rollover</th>
            <th>Top-up bonus boost</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {plans.map((p) => {
            const current = subscription?.plan.code === p.code;
            // Choosing the current plan again cancels a pending downgrade.
            const choosable = admin && p.price !== null && (!current || subscription?.nextPlan);
            return (
              <tr key={p.code} data-testid="plan-row" data-code={p.code}>
                <td>
                  {p.name} {current && <span className="muted">(current)</span>}
                </td>
                <td>{formatPrice(p.price ?? null, p.period)}</td>
                <td>{formatInUnit(p.monthlyCredits.usd, p.unit)}</td>
                <td>{p.rolloverPercent}%</td>
                <td>+{p.topUpBonusBoostPercent}%</td>
                <td>
                  {choosable && (
                    <button
                      type="button"
                      data-testid="plan-choose"
                      disabled={changed.fetching}
                      onClick={() => void change({ input: { planCode: p.code } })}
                    >
                      {current ? "Keep" : "Switch"}
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <Problems error={changed.error} userErrors={payload?.userErrors} />
      {payload?.subscription && (
        <p data-testid="plan-change-result">
          {payload.checkoutUrl ? (
            <a href={payload.checkoutUrl}>Pay for the plan on Stripe Checkout</a>
          ) : payload.subscription.nextPlan ? (
            `${payload.subscription.nextPlan.name} from ${new Date(payload.effectiveAt ?? payload.subscription.currentPeriodEnd).toLocaleString()}`
          ) : (
            `Now on ${payload.subscription.plan.name}.`
          )}
        </p>
      )}
    </section>
  );
}
