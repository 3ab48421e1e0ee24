import { useState, type FormEvent } from "react";
import { useMutation, useQuery } from "urql";

import type { Config } from "../config";
import { count } from "../count";
import { DownloadButton } from "../download";
import { Problems } from "../errors";
import { BillingTransactionsDocument, RefundTopUpDocument, type BillingTransactionsQuery } from "../gql/graphql";
import { useRefetchOnTick } from "../live";
import { formatInUnit, formatUsd } from "../money";
import { Pager } from "../pager";
import { isAdmin, useRole, useUnit } from "../viewer";

type Transaction = BillingTransactionsQuery["viewer"]["organization"]["billingTransactions"]["edges"][number]["node"];

const PAGE = 20;
// The kinds whose `amount` is dollars paid or owed; the others' (allocations, grants,
// adjustments, expiries) moves credits, in the organization's unit.
const PAID_IN_USD = new Set<Transaction["kind"]>(["TOP_UP", "AUTO_RELOAD", "REFUND", "OVERAGE"]);
// A refund or a new top-up invalidates the list even while it is empty.
const CONTEXT = { additionalTypenames: ["BillingTransaction"] };

/** Top-ups (with their payment status), refunds, adjustments and expiries, newest first;
 * admins refund a succeeded top-up from its row. The whole of it downloadable as CSV. */
export function BillingHistory({ config }: { config: Config }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [result, reexecute] = useQuery({
    query: BillingTransactionsDocument,
    variables: { first: PAGE, after: cursors[cursors.length - 1] },
    context: CONTEXT,
  });
  useRefetchOnTick(reexecute);
  const admin = isAdmin(useRole());
  const page = result.data?.viewer.organization.billingTransactions;
  return (
    <section>
      <h2>Billing history</h2>
      <DownloadButton
        config={config}
        path="/api/v1/me/billing/transactions.csv"
        filename="billing-transactions.csv"
        testId="billing-csv"
      >
        Download CSV
      </DownloadButton>
      {result.error && <p className="error">{result.error.message}</p>}
      <table data-testid="billing-history">
        <thead>
          <tr>
            <th>Time</th>
            <th>Kind</th>
            <th>Status</th>
            <th>Amount</th>
            <th>Credits</th>
            <th>Refunded</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {page?.edges.map(({ node }) => <BillingRow key={node.id} node={node} admin={admin} />)}
        </tbody>
      </table>
      <Pager cursors={cursors} setCursors={setCursors} pageInfo={page?.pageInfo} labels={["Newer", "Older"]}>
        {page && count(page.totalCount, "transaction")}
      </Pager>
    </section>
  );
}

/** A succeeded top-up whose payment is not refunded in full yet (credits compared exactly). */
function refundable(t: Transaction): boolean {
  const paid = (t.kind === "TOP_UP" || t.kind === "AUTO_RELOAD") && t.status === "SUCCEEDED";
  return paid && BigInt(t.refunded.credits) < BigInt(t.amount.credits);
}

function BillingRow({ node, admin }: { node: Transaction; admin: boolean }) {
  const [refunding, setRefunding] = useState(false);
  const unit = useUnit();
  return (
    <>
      <tr data-testid="billing-row" data-kind={node.kind}>
        <td>{new Date(node.createdAt).toLocaleString()}</td>
        <td>{node.kind.toLowerCase().replace(/_/g, " ")}</td>
        <td data-testid="billing-status">
          {node.status}
          {node.failureReason && <span className="muted"> ({node.failureReason})</span>}
        </td>
        <td>{PAID_IN_USD.has(node.kind) ? formatUsd(node.amount.usd) : formatInUnit(node.amount.usd, unit)}</td>
        <td>{formatInUnit(node.credits.usd, unit)}</td>
        <td>{node.refunded.credits === "0" ? "" : formatUsd(node.refunded.usd)}</td>
        <td>
          {admin && refundable(node) && !refunding && (
            <button type="button" data-testid="topup-refund" onClick={() => setRefunding(true)}>
              Refund
            </button>
          )}
        </td>
      </tr>
      {refunding && (
        <tr>
          <td colSpan={7}>
            <RefundForm node={node} onClose={() => setRefunding(false)} />
          </td>
        </tr>
      )}
    </>
  );
}

function RefundForm({ node, onClose }: { node: Transaction; onClose: () => void }) {
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const [refunded, refund] = useMutation(RefundTopUpDocument);
  const payload = refunded.data?.refundTopUp;
  const unit = useUnit();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void refund({ input: { topUpId: node.id, amountUsd: amount.trim() || null, reason: reason.trim() || null } });
  };
  if (payload?.refund) {
    return (
      <p data-testid="refund-result">
        Refunded {formatUsd(payload.refund.amount.usd)}: {formatInUnit(payload.clawedBack?.usd ?? "0", unit)} taken back from the wallet
        {payload.notClawedBack && payload.notClawedBack.credits !== "0" &&
          `; ${formatInUnit(payload.notClawedBack.usd, unit)} were already spent and stay spent`}
        .{" "}
        <button type="button" onClick={onClose}>
          Close
        </button>
      </p>
    );
  }
  return (
    <form className="inline" onSubmit={submit}>
      <label>
        Refund (USD) <input data-testid="refund-amount" inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} placeholder="all that is left" />
      </label>
      <label>
        Reason <input value={reason} onChange={(e) => setReason(e.target.value)} maxLength={500} />
      </label>
      <button type="submit" className="danger" data-testid="refund-confirm" disabled={refunded.fetching}>
        Refund
      </button>
      <button type="button" onClick={onClose}>
        Cancel
      </button>
      <Problems error={refunded.error} userErrors={payload?.userErrors} />
    </form>
  );
}
