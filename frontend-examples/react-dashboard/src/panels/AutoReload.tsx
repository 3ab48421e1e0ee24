import { useState, type FormEvent } from "react";
import { useMutation } from "urql";

import { Problems } from "../errors";
import { UpdateAutoReloadDocument, type WalletOverviewQuery } from "../gql/graphql";
import { formatUsd, inputInUnit, unitName, usdInput } from "../money";
import { isAdmin, useRole, useUnit, useWalletOverview } from "../viewer";

type Settings = WalletOverviewQuery["viewer"]["organization"]["autoReload"];

/** The monthly maximum's field, which autoScale's panel points to (its Max Monthly Spend). */
export const AUTO_RELOAD_MAX = "auto-reload-max";

/** Auto-reload: on a balance under the threshold (in the organization's unit) the saved
 * card is charged the amount, never past the monthly maximum (both in dollars). */
export function AutoReload() {
  const [overview] = useWalletOverview();
  const settings = overview.data?.viewer.organization.autoReload;
  const admin = isAdmin(useRole());
  return (
    <section data-testid="auto-reload">
      <h2>Auto-reload</h2>
      {overview.error && <p className="error">{overview.error.message}</p>}
      {settings && (
        <>
          <p className="muted">
            Reloaded {formatUsd(settings.reloadedThisMonth.usd)} of {formatUsd(settings.monthlyMax.usd)} this month.
            {!settings.cardSaved && " No card saved yet: a top-up paid by card saves one; until then nothing reloads."}
          </p>
          {settings.failureReason && <p className="error">The last reload failed ({settings.failureReason}): paused until saved again.</p>}
          {admin && <AutoReloadForm settings={settings} />}
        </>
      )}
    </section>
  );
}

function AutoReloadForm({ settings }: { settings: Settings }) {
  const unit = useUnit();
  const [enabled, setEnabled] = useState(settings.enabled);
  const [threshold, setThreshold] = useState(inputInUnit(settings.threshold.usd, unit));
  const [amount, setAmount] = useState(usdInput(settings.amount.usd));
  const [monthlyMax, setMonthlyMax] = useState(usdInput(settings.monthlyMax.usd));
  const [saved, save] = useMutation(UpdateAutoReloadDocument);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void save({
      input: { enabled, thresholdUsd: threshold.trim(), amountUsd: amount.trim(), monthlyMaxUsd: monthlyMax.trim() },
    });
  };
  const payload = saved.data?.updateAutoReload;
  return (
    <form className="inline" onSubmit={submit}>
      <label>
        <input type="checkbox" data-testid="auto-reload-enabled" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> On
      </label>
      <label>
        Below ({unitName(unit)}) <input data-testid="auto-reload-threshold" inputMode="decimal" value={threshold} onChange={(e) => setThreshold(e.target.value)} />
      </label>
      <label>
        Reload (USD) <input data-testid="auto-reload-amount" inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} />
      </label>
      <label>
        Monthly max (USD) <input id={AUTO_RELOAD_MAX} data-testid="auto-reload-max" inputMode="decimal" value={monthlyMax} onChange={(e) => setMonthlyMax(e.target.value)} />
      </label>
      <button type="submit" data-testid="auto-reload-save" disabled={saved.fetching}>
        Save
      </button>
      {payload?.autoReload && <span data-testid="auto-reload-saved">Saved.</span>}
      <Problems error={saved.error} userErrors={payload?.userErrors} />
    </form>
  );
}
