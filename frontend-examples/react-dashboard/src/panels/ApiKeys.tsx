import { useState, type FormEvent } from "react";
import { useMutation, useQuery } from "urql";

import { count } from "../count";
import { Problems } from "../errors";
import {
  ApiKeysDocument,
  CreateApiKeyDocument,
  RevealApiKeyDocument,
  RevokeApiKeyDocument,
  RotateApiKeyDocument,
  UpdateApiKeyCapsDocument,
  type ApiKeysQuery,
} from "../gql/graphql";
import { useRefetchOnTick } from "../live";
import { formatInUnit, inputInUnit, unitName } from "../money";
import { SecretDialog } from "../secret";
import { countdown, useNow } from "../time";
import { useRole, useUnit } from "../viewer";
import { KeyTest } from "./KeyTest";

type KeyNode = NonNullable<ApiKeysQuery["viewer"]["organization"]["apiKeys"]["edges"][number]["node"]>;

const WINDOW_LABELS = { FIVE_HOURS: "5 h", ONE_DAY: "1 d", SEVEN_DAYS: "7 d" } as const;

/** A cap field as typed: empty means "no limit" (null), else the Decimal string, in the
 * organization's unit as the key's spend is (the inputs are named ...Usd all the same). */
const capOrNull = (value: string): string | null => (value.trim() === "" ? null : value.trim());

/** The list of keys; create (secret shown once), edit caps, rotate, revoke, reveal
 * (owners), test against a model. */
export function ApiKeys() {
  const [result, reexecute] = useQuery({ query: ApiKeysDocument, variables: { first: 50 } });
  useRefetchOnTick(reexecute);
  // The secret lives only in this state while the dialog is open, and is dropped on close.
  const [secret, setSecret] = useState<{ name: string; value: string; revealed?: boolean } | null>(null);
  const owner = useRole() === "OWNER";
  const keys = result.data?.viewer.organization.apiKeys;
  return (
    <section>
      <h2>API keys</h2>
      <CreateKey
        onCreated={(name, value) => {
          setSecret({ name, value });
          reexecute({ requestPolicy: "network-only" });
        }}
      />
      {result.error && <p className="error">{result.error.message}</p>}
      <table data-testid="api-keys">
        <thead>
          <tr>
            <th>Name</th>
            <th>Prefix</th>
            <th>Status</th>
            <th>Quota left</th>
            <th>Windows (left, resets in)</th>
            <th>Last used</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {keys?.edges.map(({ node }) => (
            <KeyRow
              key={node.id}
              node={node}
              owner={owner}
              onSecret={(value, revealed) => setSecret({ name: node.name, value, revealed })}
            />
          ))}
        </tbody>
      </table>
      {keys && <p className="muted">{count(keys.totalCount, "key")}</p>}
      {secret && (
        <SecretDialog
          testid="key-secret"
          title={`Secret of “${secret.name}”`}
          secret={secret.value}
          revealed={secret.revealed}
          onClose={() => setSecret(null)}
        />
      )}
    </section>
  );
}

function CreateKey({ onCreated }: { onCreated: (name: string, secret: string) => void }) {
  const [name, setName] = useState("");
  const [quota, setQuota] = useState("");
  const [daily, setDaily] = useState("");
  const [created, create] = useMutation(CreateApiKeyDocument);
  const unit = useUnit();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const result = await create({
      input: { name: name.trim(), quotaUsd: capOrNull(quota), rateLimit1dUsd: capOrNull(daily) },
    });
    const payload = result.data?.createApiKey;
    if (payload?.secret && payload.apiKey) {
      onCreated(payload.apiKey.name, payload.secret);
      setName("");
      setQuota("");
      setDaily("");
    }
  };
  return (
    <form className="inline" onSubmit={submit}>
      <label>
        Name <input data-testid="create-key-name" value={name} onChange={(e) => setName(e.target.value)} required />
      </label>
      <label>
        Quota ({unitName(unit)}) <input inputMode="decimal" value={quota} onChange={(e) => setQuota(e.target.value)} placeholder="none" />
      </label>
      <label>
        Per day ({unitName(unit)}) <input inputMode="decimal" value={daily} onChange={(e) => setDaily(e.target.value)} placeholder="none" />
      </label>
      <button type="submit" data-testid="create-key-submit" disabled={created.fetching}>
        Create key
      </button>
      <Problems error={created.error} userErrors={created.data?.createApiKey.userErrors} />
    </form>
  );
}

function KeyRow({ node, owner, onSecret }: { node: KeyNode; owner: boolean; onSecret: (secret: string, revealed?: boolean) => void }) {
  const now = useNow();
  const unit = useUnit();
  const [editing, setEditing] = useState(false);
  const [testing, setTesting] = useState(false);
  const [confirmRevoke, setConfirmRevoke] = useState(false);
  const [rotated, rotate] = useMutation(RotateApiKeyDocument);
  const [revoked, revoke] = useMutation(RevokeApiKeyDocument);
  const [revealed, reveal] = useMutation(RevealApiKeyDocument);
  const active = node.status === "ACTIVE";
  const doRotate = async () => {
    const result = await rotate({ input: { id: node.id } });
    const secret = result.data?.rotateApiKey.secret;
    if (secret) onSecret(secret);
  };
  const doReveal = async () => {
    const result = await reveal({ input: { id: node.id } });
    const secret = result.data?.revealApiKey.secret;
    if (secret) onSecret(secret, true);
  };
  return (
    <>
      <tr data-testid="api-key-row">
        <td>{node.name}</td>
        <td>
          <code>{node.prefix}…</code>
        </td>
        <td>{node.status.toLowerCase()}</td>
        <td>{node.quota.limit ? `${formatInUnit(node.quota.remaining!.usd, unit)} of ${formatInUnit(node.quota.limit.usd, unit)}` : "no limit"}</td>
        <td>
          {node.windows.length === 0
            ? "none"
            : node.windows.map((w) => (
                <div key={w.window}>
                  {WINDOW_LABELS[w.window]}: {formatInUnit(w.remaining.usd, unit)} of {formatInUnit(w.limit.usd, unit)}
                  {w.resetsAt && <span className="muted"> · resets in {countdown(w.resetsAt, now)}</span>}
                </div>
              ))}
        </td>
        <td>{node.lastUsedAt ? new Date(node.lastUsedAt).toLocaleString() : "never"}</td>
        <td className="actions">
          <button type="button" data-testid="key-edit-caps" disabled={!active} onClick={() => setEditing(!editing)}>
            Edit caps
          </button>
          <button type="button" data-testid="key-test" disabled={!active} onClick={() => setTesting(!testing)}>
            Test
          </button>
          <button type="button" data-testid="key-rotate" disabled={!active || rotated.fetching} onClick={() => void doRotate()}>
            Rotate
          </button>
          {owner && (
            <button type="button" data-testid="key-reveal" disabled={!active || revealed.fetching} onClick={() => void doReveal()}>
              Reveal
            </button>
          )}
          {confirmRevoke ? (
            <button
              type="button"
              data-testid="key-revoke-confirm"
              className="danger"
              disabled={revoked.fetching}
              onClick={() => void revoke({ input: { id: node.id } }).then(() => setConfirmRevoke(false))}
            >
              Really revoke
            </button>
          ) : (
            <button type="button" data-testid="key-revoke" disabled={!active} onClick={() => setConfirmRevoke(true)}>
              Revoke
            </button>
          )}
          <Problems
            error={rotated.error ?? revoked.error ?? revealed.error}
            userErrors={[
              ...(rotated.data?.rotateApiKey.userErrors ?? []),
              ...(revoked.data?.revokeApiKey.userErrors ?? []),
              ...(revealed.data?.revealApiKey.userErrors ?? []),
            ]}
          />
        </td>
      </tr>
      {editing && (
        <tr>
          <td colSpan={7}>
            <EditCaps node={node} onDone={() => setEditing(false)} />
          </td>
        </tr>
      )}
      {testing && (
        <tr>
          <td colSpan={7}>
            <KeyTest id={node.id} onDone={() => setTesting(false)} />
          </td>
        </tr>
      )}
    </>
  );
}

function EditCaps({ node, onDone }: { node: KeyNode; onDone: () => void }) {
  const unit = useUnit();
  const limitOf = (window: string) => {
    const limit = node.windows.find((w) => w.window === window)?.limit;
    return limit ? inputInUnit(limit.usd, unit) : "";
  };
  const [quota, setQuota] = useState(node.quota.limit ? inputInUnit(node.quota.limit.usd, unit) : "");
  const [h5, setH5] = useState(limitOf("FIVE_HOURS"));
  const [d1, setD1] = useState(limitOf("ONE_DAY"));
  const [d7, setD7] = useState(limitOf("SEVEN_DAYS"));
  const [updated, update] = useMutation(UpdateApiKeyCapsDocument);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const result = await update({
      input: {
        id: node.id,
        quotaUsd: capOrNull(quota),
        rateLimit5hUsd: capOrNull(h5),
        rateLimit1dUsd: capOrNull(d1),
        rateLimit7dUsd: capOrNull(d7),
      },
    });
    if (result.data?.updateApiKeyCaps.apiKey) onDone();
  };
  const field = (label: string, value: string, set: (v: string) => void, testid: string) => (
    <label>
      {label} <input data-testid={testid} inputMode="decimal" value={value} onChange={(e) => set(e.target.value)} placeholder="no limit" />
    </label>
  );
  return (
    <form className="inline" onSubmit={submit}>
      {field(`Quota (${unitName(unit)})`, quota, setQuota, "caps-quota")}
      {field("5 h", h5, setH5, "caps-5h")}
      {field("1 d", d1, setD1, "caps-1d")}
      {field("7 d", d7, setD7, "caps-7d")}
      <button type="submit" data-testid="caps-save" disabled={updated.fetching}>
        Save caps
      </button>
      <button type="button" onClick={onDone}>
        Cancel
      </button>
      <span className="muted">Empty = no limit.</span>
      <Problems error={updated.error} userErrors={updated.data?.updateApiKeyCaps.userErrors} />
    </form>
  );
}
