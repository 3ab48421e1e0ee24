import { useState } from "react";
import { useQuery } from "urql";

import type { Config } from "../config";
import { count } from "../count";
import { DownloadButton } from "../download";
import { StatementsDocument, type StatementsQuery } from "../gql/graphql";
import { useRefetchOnTick } from "../live";
import { formatInUnit } from "../money";
import { Pager } from "../pager";
import { useUnit } from "../viewer";

type Statement = NonNullable<StatementsQuery["viewer"]["organization"]["statements"]>["edges"][number]["node"];

const PAGE = 12;
// The month's figures in their order: the opening balance, every line, the closing one.
const FIGURES = [
  ["openingBalance", "Opening"],
  ["purchases", "Purchases"],
  ["bonuses", "Bonuses"],
  ["grants", "Grants"],
  ["adjustments", "Adjustments"],
  ["usage", "Usage"],
  ["overage", "Overage"],
  ["expiries", "Expiries"],
  ["refunds", "Refunds"],
  ["closingBalance", "Closing"],
] as const;

/** Monthly statements (UTC), newest first: the month running, then the closed ones, each
 * line in the organization's unit, its usage by model and action on demand; each
 * downloadable as PDF and JSON. */
export function Statements({ config }: { config: Config }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [result, reexecute] = useQuery({
    query: StatementsDocument,
    variables: { first: PAGE, after: cursors[cursors.length - 1] },
  });
  // The running month's figures move with the wallet.
  useRefetchOnTick(reexecute);
  const page = result.data?.viewer.organization.statements;
  return (
    <section>
      <h2>Statements</h2>
      {result.error && <p className="error">{result.error.message}</p>}
      <table data-testid="statements">
        <thead>
          <tr>
            <th>Month</th>
            {FIGURES.map(([line, label]) => (
              <th key={line}>{label}</th>
            ))}
            <th />
          </tr>
        </thead>
        <tbody>
          {page?.edges.map(({ node }) => <StatementRow key={node.id} node={node} config={config} />)}
        </tbody>
      </table>
      <Pager cursors={cursors} setCursors={setCursors} pageInfo={page?.pageInfo} labels={["Newer", "Older"]} testId="statements">
        {page && count(page.totalCount, "month")}
      </Pager>
    </section>
  );
}

function StatementRow({ node, config }: { node: Statement; config: Config }) {
  const [open, setOpen] = useState(false);
  const unit = useUnit();
  return (
    <>
      <tr data-testid="statement-row" data-month={node.month}>
        <td>
          <button
            type="button"
            data-testid="statement-usage-toggle"
            aria-expanded={open}
            aria-label="Usage by model and action"
            title="Usage by model and action"
            onClick={() => setOpen(!open)}
          >
            {open ? "▾" : "▸"}
          </button>{" "}
          {node.month}{" "}
          <span className="muted" data-testid="statement-state">
            {node.closed ? "closed" : "running"}
          </span>
        </td>
        {FIGURES.map(([line]) => (
          <td key={line} data-testid="statement-figure" data-line={line}>
            {formatInUnit(node[line].usd, unit)}
          </td>
        ))}
        <td>
          <div className="actions">
            <DownloadButton config={config} path={node.pdfUrl} filename={`statement-${node.month}.pdf`} testId="statement-pdf">
              PDF
            </DownloadButton>
            <DownloadButton config={config} path={node.jsonUrl} filename={`statement-${node.month}.json`} testId="statement-json">
              JSON
            </DownloadButton>
          </div>
        </td>
      </tr>
      {open && (
        <tr>
          <td colSpan={FIGURES.length + 2}>
            <table data-testid="statement-usage">
              <thead>
                <tr>
                  <th>Model</th>
                  <th>Action</th>
                  <th>Calls</th>
                  <th>Charged</th>
                </tr>
              </thead>
              <tbody>
                {node.usageByModelAndAction.map((u) => (
                  <tr key={`${u.model} ${u.action}`} data-testid="statement-usage-row">
                    <td>{u.model}</td>
                    <td>{u.action}</td>
                    <td>{u.requests}</td>
                    <td>{formatInUnit(u.amount.usd, unit)}</td>
                  </tr>
                ))}
                {node.usageByModelAndAction.length === 0 && (
                  <tr>
                    <td colSpan={4} className="muted">
                      No calls this month.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </td>
        </tr>
      )}
    </>
  );
}
