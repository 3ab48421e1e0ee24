import { useMutation } from "urql";

import { Problems } from "../errors";
import { SetAutoScaleDocument } from "../gql/graphql";
import { formatUsd } from "../money";
import { isAdmin, useRole, useWalletOverview } from "../viewer";
import { AUTO_RELOAD_MAX } from "./AutoReload";

/** autoScale (Bytez): whether calls that do not say buy the unlock tier they need instead
 * of being refused; its purchases stay within the Max Monthly Spend, auto-reload's maximum. */
export function AutoScale() {
  const [overview] = useWalletOverview();
  const settings = overview.data?.viewer.organization.autoScale;
  const admin = isAdmin(useRole());
  const [saved, save] = useMutation(SetAutoScaleDocument);
  return (
    <section data-testid="auto-scale">
      <h2>autoScale</h2>
      {overview.error && <p className="error">{overview.error.message}</p>}
      {settings && (
        <>
          <p>
            <strong data-testid="auto-scale-state">{settings.byDefault ? "On" : "Off"}</strong>:{" "}
            {settings.byDefault
              ? "an open-model call past the unlock tier's size or concurrency buys the tier it needs."
              : "a call past the unlock tier's limits is refused unless it asks for autoScale."}{" "}
            {admin && (
              <button
                type="button"
                data-testid="auto-scale-toggle"
                aria-pressed={settings.byDefault}
                disabled={saved.fetching}
                onClick={() => void save({ input: { byDefault: !settings.byDefault } })}
              >
                {settings.byDefault ? "Turn off" : "Turn on"}
              </button>
            )}
          </p>
          <p className="muted">
            Max Monthly Spend <span data-testid="auto-scale-max">{formatUsd(settings.maxMonthlySpend.usd)}</span>, shared
            with auto-reload: its monthly max.{" "}
            {admin && (
              <button type="button" data-testid="auto-scale-edit-max" onClick={() => document.getElementById(AUTO_RELOAD_MAX)?.focus()}>
                Edit
              </button>
            )}
          </p>
          <Problems error={saved.error} userErrors={saved.data?.setAutoScale.userErrors} />
        </>
      )}
    </section>
  );
}
