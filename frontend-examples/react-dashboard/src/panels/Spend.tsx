import { useMemo } from "react";
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { useQuery } from "urql";

import { UsageSummaryDocument } from "../gql/graphql";
import { useRefetchOnTick } from "../live";
import { formatInUnit } from "../money";
import { lastDays, utcDay } from "../time";
import { useUnit } from "../viewer";

export const DAYS = 30;

/** The last 30 UTC days: spend by day (a chart) and by model (a table). */
export function Spend() {
  const range = useMemo(() => lastDays(DAYS), []);
  const [result, reexecute] = useQuery({
    query: UsageSummaryDocument,
    variables: { ...range, granularity: "DAY" },
  });
  useRefetchOnTick(reexecute);
  const unit = useUnit();
  const summary = result.data?.viewer.organization.usageSummary;
  // The chart needs numbers; Number() of a Decimal string is for drawing only, never for sums.
  const series = (summary?.series ?? []).map((b) => ({
    day: utcDay(b.bucketStart),
    usd: Number(b.spend.usd),
    label: formatInUnit(b.spend.usd, unit),
    requests: b.requests,
  }));
  return (
    <section>
      <h2>Spend, last {DAYS} days</h2>
      {result.error && <p className="error">{result.error.message}</p>}
      {summary && (
        <p>
          Total {formatInUnit(summary.total.usd, unit)} over {summary.requests} calls; projected this period{" "}
          {formatInUnit(summary.projectedPeriodSpend.usd, unit)}.
        </p>
      )}
      <div data-testid="spend-chart" className="chart">
        <ResponsiveContainer width="100%" height={240}>
          <BarChart data={series}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="day" tickFormatter={(d: string) => d.slice(5)} />
            <YAxis width={80} tickFormatter={(v: number) => formatInUnit(String(v), unit)} />
            <Tooltip formatter={(_v, _n, item) => [(item.payload as { label: string }).label, "spend"]} />
            <Bar dataKey="usd" name="spend" fill="#4f6bed" isAnimationActive={false} />
          </BarChart>
        </ResponsiveContainer>
      </div>
      <h3>By model</h3>
      <table data-testid="model-breakdown">
        <thead>
          <tr>
            <th>Model</th>
            <th>Calls</th>
            <th>Spend</th>
          </tr>
        </thead>
        <tbody>
          {summary?.byModel.map((m) => (
            <tr key={m.model}>
              <td>{m.model}</td>
              <td>{m.requests}</td>
              <td>{formatInUnit(m.spend.usd, unit)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
