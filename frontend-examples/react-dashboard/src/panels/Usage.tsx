import { useState } from "react";
import { useQuery } from "urql";

import type { Config } from "../config";
import { count } from "../count";
import { DownloadButton } from "../download";
import { ApiKeysDocument, UsageDocument } from "../gql/graphql";
import { useRefetchOnTick } from "../live";
import { formatInUnit } from "../money";
import { Pager } from "../pager";
import { useDebounced } from "../time";
import { useUnit } from "../viewer";

const PAGE = 20;

/** The per-call log, newest first, filtered by key and model, a page at a time (keyset
 * cursors); downloadable as CSV. */
export function Usage({ config }: { config: Config }) {
  const [model, setModel] = useState("");
  const [keyId, setKeyId] = useState("");
  // The cursors of the pages before this one, to go back; null is the first page.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const after = cursors[cursors.length - 1];
  const filterModel = useDebounced(model.trim());
  const [result, reexecute] = useQuery({
    query: UsageDocument,
    variables: { first: PAGE, after, filter: { model: filterModel || null, apiKeyId: keyId || null } },
  });
  const [keys] = useQuery({ query: ApiKeysDocument, variables: { first: 100 } });
  useRefetchOnTick(reexecute);
  const unit = useUnit();
  const usage = result.data?.viewer.organization.usage;
  const setFilter = (value: string) => {
    setModel(value);
    setCursors([null]);
  };
  const setKey = (value: string) => {
    setKeyId(value);
    setCursors([null]);
  };
  return (
    <section>
      <h2>Usage</h2>
      <label>
        Key{" "}
        <select data-testid="usage-filter-key" value={keyId} onChange={(e) => setKey(e.target.value)}>
          <option value="">all keys</option>
          {keys.data?.viewer.organization.apiKeys.edges.map(({ node }) => (
            <option key={node.id} value={node.id}>
              {node.name} ({node.prefix})
            </option>
          ))}
        </select>
      </label>{" "}
      <label>
        Model <input data-testid="usage-filter-model" value={model} onChange={(e) => setFilter(e.target.value)} placeholder="all models" />
      </label>
      <UsageCsv config={config} model={filterModel} everyKey={keyId !== ""} />
      {result.error && <p className="error">{result.error.message}</p>}
      <table data-testid="usage-table">
        <thead>
          <tr>
            <th>Time</th>
            <th>Request</th>
            <th>Key</th>
            <th>Model</th>
            <th>Action</th>
            <th>Status</th>
            <th>Tokens in / out</th>
            <th>Cost</th>
          </tr>
        </thead>
        <tbody>
          {usage?.edges.map(({ node }) => (
            <tr key={node.id} data-testid="usage-row">
              <td>{new Date(node.createdAt).toLocaleString()}</td>
              <td>
                <code>{node.requestId}</code>
              </td>
              <td>{node.apiKey?.name ?? "-"}</td>
              <td>{node.model}</td>
              <td>{node.action}</td>
              <td>{node.status.toLowerCase()}</td>
              <td>
                {node.promptTokens} / {node.completionTokens}
              </td>
              <td>{formatInUnit(node.cost.usd, unit)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager
        cursors={cursors}
        setCursors={setCursors}
        pageInfo={usage?.pageInfo}
        labels={["Previous", "Next"]}
        testId="usage"
      >
        page {cursors.length}
        {usage && ` of ${Math.max(1, Math.ceil(usage.totalCount / PAGE))} (${count(usage.totalCount, "call")})`}
      </Pager>
    </section>
  );
}

/** The CSV export: every call, or the model filter's (the export has no key filter). */
function UsageCsv({ config, model, everyKey }: { config: Config; model: string; everyKey: boolean }) {
  return (
    <>
      {" "}
      <DownloadButton config={config} path="/api/v1/me/usage.csv" filename="usage.csv" params={{ model }} testId="usage-csv">
        Download CSV{model ? ` (${model})` : ""}
      </DownloadButton>
      {everyKey && <span className="muted"> of every key&apos;s calls</span>}
    </>
  );
}
