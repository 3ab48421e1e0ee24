import { useEffect, useState, type FormEvent } from "react";
import { useMutation, useQuery, useSubscription } from "urql";

import { Problems } from "../errors";
import { AlertFiredDocument, AlertsDocument, CreateAlertRuleDocument, type AlertKind } from "../gql/graphql";
import { formatInUnit, unitName } from "../money";
import { useUnit } from "../viewer";

// What each kind's threshold counts: an amount of the wallet (in the organization's unit,
// as the balance and spend it watches are), a percent, or nothing.
type Threshold = "amount" | "percent" | null;
const KINDS: { kind: AlertKind; threshold: Threshold }[] = [
  { kind: "BALANCE_BELOW", threshold: "amount" },
  { kind: "DAILY_SPEND_ABOVE", threshold: "amount" },
  { kind: "SPEND_PERCENT_OF_ALLOCATION", threshold: "percent" },
  { kind: "KEY_CAP_PERCENT", threshold: "percent" },
  { kind: "AUTO_RELOAD_FAILED", threshold: null },
];
const thresholdOf = (kind: AlertKind): Threshold => KINDS.find((k) => k.kind === kind)?.threshold ?? null;

/** Alert rules and their recent events; a new event arrives live over alertFired. */
export function Alerts() {
  const [result, reexecute] = useQuery({ query: AlertsDocument });
  const [fired] = useSubscription({ query: AlertFiredDocument });
  const firedId = fired.data?.alertFired.id;
  useEffect(() => {
    if (firedId) reexecute({ requestPolicy: "network-only" });
  }, [firedId, reexecute]);
  const org = result.data?.viewer.organization;
  const unit = useUnit();
  const shown = (kind: AlertKind, value: string | null) => {
    if (value === null) return "";
    return thresholdOf(kind) === "amount" ? formatInUnit(value, unit) : `${value}%`;
  };
  return (
    <section data-testid="alerts">
      <h2>Alerts</h2>
      {result.error && <p className="error">{result.error.message}</p>}
      <NewRule onCreated={() => reexecute({ requestPolicy: "network-only" })} />
      <h3>Rules</h3>
      <ul>
        {org?.alertRules.length === 0 && <li className="muted">No rules yet.</li>}
        {org?.alertRules.map((r) => (
          <li key={r.id}>
            {r.kind} {shown(r.kind, r.threshold ?? null)} {r.enabled ? "" : "(disabled)"} {r.webhookUrl && <span className="muted">→ {r.webhookUrl}</span>}
          </li>
        ))}
      </ul>
      <h3>Recent events</h3>
      <ul>
        {org?.alertEvents.edges.length === 0 && <li className="muted">Nothing fired.</li>}
        {org?.alertEvents.edges.map(({ node }) => (
          <li key={node.id}>
            {new Date(node.firedAt).toLocaleString()}: {node.message}
            {node.acknowledgedAt && <span className="muted"> (seen)</span>}
          </li>
        ))}
      </ul>
    </section>
  );
}

function NewRule({ onCreated }: { onCreated: () => void }) {
  const [kind, setKind] = useState<AlertKind>("BALANCE_BELOW");
  const [threshold, setThreshold] = useState("5");
  const [created, create] = useMutation(CreateAlertRuleDocument);
  const counts = thresholdOf(kind);
  const unit = useUnit();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const result = await create({ input: { kind, threshold: counts ? threshold.trim() : null } });
    if (result.data?.createAlertRule.alertRule) onCreated();
  };
  return (
    <form className="inline" onSubmit={submit}>
      <select value={kind} onChange={(e) => setKind(e.target.value as AlertKind)}>
        {KINDS.map((k) => (
          <option key={k.kind}>{k.kind}</option>
        ))}
      </select>
      {counts && (
        <label>
          Threshold ({counts === "amount" ? unitName(unit) : "%"}) <input inputMode="decimal" value={threshold} onChange={(e) => setThreshold(e.target.value)} />
        </label>
      )}
      <button type="submit" disabled={created.fetching}>
        Add rule
      </button>
      <Problems error={created.error} userErrors={created.data?.createAlertRule.userErrors} />
    </form>
  );
}
