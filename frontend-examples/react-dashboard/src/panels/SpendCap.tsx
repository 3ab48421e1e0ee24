import { useState, type FormEvent } from "react";
import { useMutation } from "urql";

import { Problems } from "../errors";
import { SetSpendCapDocument } from "../gql/graphql";
import { formatInUnit, trimDecimal, unitName } from "../money";
import { isAdmin, useRole, useUnit, useWalletOverview } from "../viewer";

/** The organization's monthly spend cap, in its unit (USD or plan credits): set or remove it. */
export function SpendCap() {
  const [overview] = useWalletOverview();
  const cap = overview.data?.viewer.organization.spendCap;
  const unit = useUnit();
  const admin = isAdmin(useRole());
  return (
    <section data-testid="spend-cap">
      <h2>Monthly spend cap</h2>
      {overview.error && <p className="error">{overview.error.message}</p>}
      {cap && (
        <>
          <p data-testid="spend-cap-current">
            {cap.monthlyLimit
              ? `${formatInUnit(cap.spentThisMonth.usd, unit)} spent of ${formatInUnit(cap.monthlyLimit.usd, unit)} this month (UTC)`
              : `No cap; ${formatInUnit(cap.spentThisMonth.usd, unit)} spent this month (UTC)`}
          </p>
          {admin && <SpendCapForm unit={unit} limit={cap.monthlyLimit?.usd ?? null} />}
        </>
      )}
    </section>
  );
}

function SpendCapForm({ unit, limit }: { unit: string | null; limit: string | null }) {
  const [value, setValue] = useState(limit === null ? "" : trimDecimal(limit));
  const [saved, save] = useMutation(SetSpendCapDocument);
  const submit = (monthlyLimitUsd: string | null) => void save({ input: { monthlyLimitUsd } });
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    submit(value.trim());
  };
  return (
    <form className="inline" onSubmit={onSubmit}>
      <label>
        Cap ({unitName(unit)}){" "}
        <input data-testid="spend-cap-limit" inputMode="decimal" value={value} onChange={(e) => setValue(e.target.value)} required />
      </label>
      <button type="submit" data-testid="spend-cap-save" disabled={saved.fetching}>
        Set cap
      </button>
      <button
        type="button"
        data-testid="spend-cap-remove"
        disabled={saved.fetching || limit === null}
        onClick={() => {
          setValue("");
          submit(null);
        }}
      >
        Remove cap
      </button>
      <span className="muted">At the cap, non-critical calls are refused.</span>
      <Problems error={saved.error} userErrors={saved.data?.setSpendCap.userErrors} />
    </form>
  );
}
