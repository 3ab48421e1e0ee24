import { useState } from "react";
import { useQuery } from "urql";

import type { Config } from "../config";
import { count } from "../count";
import { DownloadButton } from "../download";
import { ReceiptsDocument } from "../gql/graphql";
import { useRefetchOnTick } from "../live";
import { formatInUnit, formatMoney } from "../money";
import { Pager } from "../pager";
import { useUnit } from "../viewer";

const PAGE = 20;
// A top-up or a refund issues a receipt, also while the list is empty.
const CONTEXT = { additionalTypenames: ["BillingTransaction"] };

/** Receipts of payments and refunds, newest first: what was paid in its currency, the
 * credits it delivered in the organization's unit; each downloadable as PDF and JSON. */
export function Receipts({ config }: { config: Config }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [result, reexecute] = useQuery({
    query: ReceiptsDocument,
    variables: { first: PAGE, after: cursors[cursors.length - 1] },
    context: CONTEXT,
  });
  useRefetchOnTick(reexecute);
  const unit = useUnit();
  const page = result.data?.viewer.organization.receipts;
  return (
    <section>
      <h2>Receipts</h2>
      {result.error && <p className="error">{result.error.message}</p>}
      <table data-testid="receipts">
        <thead>
          <tr>
            <th>Number</th>
            <th>Issued</th>
            <th>Kind</th>
            <th>Description</th>
            <th>Total</th>
            <th>Credits</th>
            <th>Bonus</th>
            <th>Card</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {page?.edges.map(({ node }) => (
            <tr key={node.id} data-testid="receipt-row" data-number={node.number} data-kind={node.kind}>
              <td>
                {node.number}
                {node.refundOf && <div className="muted" data-testid="receipt-refund-of">refund of {node.refundOf.number}</div>}
              </td>
              <td>{new Date(node.issuedAt).toLocaleString()}</td>
              <td>{node.kind.toLowerCase().replace(/_/g, " ")}</td>
              <td>{node.description}</td>
              <td data-testid="receipt-total">
                {formatMoney(node.total)}
                {node.tax && <span className="muted"> (tax {formatMoney(node.tax)})</span>}
              </td>
              <td data-testid="receipt-credits">{formatInUnit(node.credits.usd, unit)}</td>
              <td data-testid="receipt-bonus">{formatInUnit(node.bonus.usd, unit)}</td>
              <td data-testid="receipt-card">{node.paymentMethod && `${node.paymentMethod.brand} •••• ${node.paymentMethod.last4}`}</td>
              <td>
                <div className="actions">
                  <DownloadButton config={config} path={node.pdfUrl} filename={`${node.number}.pdf`} testId="receipt-pdf">
                    PDF
                  </DownloadButton>
                  <DownloadButton config={config} path={node.jsonUrl} filename={`${node.number}.json`} testId="receipt-json">
                    JSON
                  </DownloadButton>
                </div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager cursors={cursors} setCursors={setCursors} pageInfo={page?.pageInfo} labels={["Newer", "Older"]} testId="receipts">
        {page && count(page.totalCount, "receipt")}
      </Pager>
    </section>
  );
}
