import { useMemo } from "react";
import { useQuery } from "urql";

import { UsageByTagDocument, UsageSummaryDocument } from "../gql/graphql";
import { useRefetchOnTick } from "../live";
import { formatInUnit } from "../money";
import { lastDays } from "../time";
import { useUnit } from "../viewer";
import { DAYS } from "./Spend";

interface Row {
  label: string;
  requests: number;
  spend: { usd: string };
}

/** Spend by action type, and at 8bit-ai's agent and conversation levels (the calls'
 * "agent" and "conversation" tags), over the spend chart's days. */
export function Breakdowns() {
  const range = useMemo(() => lastDays(DAYS), []);
  // The spend chart's query and variables: one request, re-read on each tick by the chart.
  const [summary] = useQuery({ query: UsageSummaryDocument, variables: { ...range, granularity: "DAY" } });
  const [tags, reexecuteTags] = useQuery({ query: UsageByTagDocument, variables: range });
  useRefetchOnTick(reexecuteTags);
  const byAction = summary.data?.viewer.organization.usageSummary.byAction ?? [];
  const byTag = tags.data?.viewer.organization.usageSummary;
  return (
    <section>
      <h2>Breakdowns, last {DAYS} days</h2>
      {(summary.error ?? tags.error) && <p className="error">{(summary.error ?? tags.error)?.message}</p>}
      <div className="breakdowns">
        <Breakdown title="By action" column="Action" testid="action-breakdown" rows={byAction.map((a) => ({ ...a, label: a.action }))} />
        <Breakdown title="By agent" column="Agent" testid="agent-breakdown" rows={(byTag?.byAgent ?? []).map((t) => ({ ...t, label: t.value }))} />
        <Breakdown
          title="By conversation"
          column="Conversation"
          testid="conversation-breakdown"
          rows={(byTag?.byConversation ?? []).map((t) => ({ ...t, label: t.value }))}
        />
      </div>
    </section>
  );
}

function Breakdown({ title, column, testid, rows }: { title: string; column: string; testid: string; rows: Row[] }) {
  const unit = useUnit();
  return (
    <div>
      <h3>{title}</h3>
      <table data-testid={testid}>
        <thead>
          <tr>
            <th>{column}</th>
            <th>Calls</th>
            <th>Spend</th>
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 && (
            <tr>
              <td colSpan={3} className="muted">
                None yet.
              </td>
            </tr>
          )}
          {rows.map((r) => (
            <tr key={r.label} data-testid="breakdown-row">
              <td>{r.label}</td>
              <td>{r.requests}</td>
              <td>{formatInUnit(r.spend.usd, unit)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
