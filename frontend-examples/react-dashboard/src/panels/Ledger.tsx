import { useState } from "react";
import { useQuery } from "urql";

import type { Config } from "../config";
import { count } from "../count";
import { DownloadButton } from "../download";
import { LedgerDocument } from "../gql/graphql";
import { useRefetchOnTick } from "../live";
import { formatInUnit } from "../money";
import { Pager } from "../pager";
import { useUnit } from "../viewer";

const PAGE = 25;

/** The append-only ledger, newest first: every entry with the balance after it; the whole
 * of it downloadable as CSV. */
export function Ledger({ config }: { config: Config }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [result, reexecute] = useQuery({
    query: LedgerDocument,
    variables: { first: PAGE, after: cursors[cursors.length - 1] },
  });
  useRefetchOnTick(reexecute);
  const unit = useUnit();
  const entries = result.data?.viewer.organization.wallet.entries;
  return (
    <section>
      <h2>Ledger</h2>
      <DownloadButton config={config} path="/api/v1/me/ledger.csv" filename="ledger.csv" testId="ledger-csv">
        Download CSV
      </DownloadButton>
      {result.error && <p className="error">{result.error.message}</p>}
      <table data-testid="ledger">
        <thead>
          <tr>
            <th>Time</th>
            <th>Kind</th>
            <th>Amount</th>
            <th>Balance after</th>
            <th>Reference</th>
          </tr>
        </thead>
        <tbody>
          {entries?.edges.map(({ node }) => (
            <tr key={node.id} data-testid="ledger-row">
              <td>{new Date(node.createdAt).toLocaleString()}</td>
              <td>{node.kind.toLowerCase().replace(/_/g, " ")}</td>
              <td>{formatInUnit(node.amount.usd, unit)}</td>
              <td>{formatInUnit(node.balanceAfter.usd, unit)}</td>
              <td>{node.reference ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager cursors={cursors} setCursors={setCursors} pageInfo={entries?.pageInfo} labels={["Newer", "Older"]}>
        {entries && count(entries.totalCount, "entry", "entries")}
      </Pager>
    </section>
  );
}
