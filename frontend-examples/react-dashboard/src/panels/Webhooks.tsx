import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useMutation, useQuery } from "urql";

import { count } from "../count";
import { Problems } from "../errors";
import {
  CreateWebhookEndpointDocument,
  DeleteWebhookEndpointDocument,
  RedeliverWebhookEventDocument,
  SendTestWebhookEventDocument,
  UpdateWebhookEndpointDocument,
  WebhookEndpointsDocument,
  type WebhookEndpointsQuery,
  type WebhookEventType,
} from "../gql/graphql";
import { SecretDialog } from "../secret";
import { isAdmin, useRole } from "../viewer";

type Endpoint = NonNullable<WebhookEndpointsQuery["viewer"]["organization"]["webhookEndpoints"]>[number];
type Delivery = Endpoint["deliveries"]["edges"][number]["node"];

// Each event by the name its bodies' `type` carries (schema.graphql's WebhookEventType);
// a Record of the generated union, so a value the schema adds fails the build until named.
const EVENT_NAMES: Record<WebhookEventType, string> = {
  TOP_UP_SUCCEEDED: "top_up.succeeded",
  TOP_UP_FAILED: "top_up.failed",
  REFUND_CREATED: "refund.created",
  AUTO_RELOAD_SUCCEEDED: "auto_reload.succeeded",
  AUTO_RELOAD_FAILED: "auto_reload.failed",
  BALANCE_LOW: "balance.low",
  PLAN_CHANGED: "plan.changed",
  PERIOD_RENEWED: "period.renewed",
  API_KEY_CREATED: "api_key.created",
  API_KEY_REVOKED: "api_key.revoked",
  SPEND_CAP_REACHED: "spend_cap.reached",
  CREDITS_EXPIRED: "credits.expired",
};
const EVENTS = Object.keys(EVENT_NAMES) as WebhookEventType[];

// Deliveries are attempted in the background after the mutation that queued them
// answers, and retried after a backoff: a short poll while any is pending shows their
// attempts as they land, and stops once each is delivered or given up.
const POLL_MS = 2000;

const when = (iso: string) => <time dateTime={iso}>{new Date(iso).toLocaleString()}</time>;

/** Webhook endpoints, for owners and admins (the server refuses other roles): hidden from
 * the others. */
export function Webhooks() {
  return isAdmin(useRole()) ? <WebhookEndpoints /> : null;
}

/** The endpoints with their latest deliveries; add one (its signing secret shown once),
 * enable or disable, send a test event, redeliver, delete. */
function WebhookEndpoints() {
  const [result, reexecute] = useQuery({ query: WebhookEndpointsDocument });
  const refetch = useCallback(() => reexecute({ requestPolicy: "network-only" }), [reexecute]);
  // The secret lives only in this state while the dialog is open, and is dropped on close.
  const [secret, setSecret] = useState<{ url: string; value: string } | null>(null);
  const endpoints = result.data?.viewer.organization.webhookEndpoints;
  const pending = endpoints?.some((e) => e.deliveries.edges.some(({ node }) => node.status === "PENDING")) ?? false;
  useEffect(() => {
    if (!pending) return;
    const timer = window.setInterval(refetch, POLL_MS);
    return () => window.clearInterval(timer);
  }, [pending, refetch]);
  return (
    <section data-testid="webhooks">
      <h2>Webhooks</h2>
      <CreateEndpoint
        onCreated={(url, value) => {
          setSecret({ url, value });
          refetch();
        }}
      />
      {result.error && <p className="error">{result.error.message}</p>}
      {endpoints?.length === 0 && <p className="muted">No endpoints yet.</p>}
      {endpoints?.map((endpoint) => <EndpointRow key={endpoint.id} endpoint={endpoint} onChanged={refetch} />)}
      {secret && (
        <SecretDialog
          testid="webhook-secret"
          title={`Signing secret of ${secret.url}`}
          secret={secret.value}
          onClose={() => setSecret(null)}
        />
      )}
    </section>
  );
}

function CreateEndpoint({ onCreated }: { onCreated: (url: string, secret: string) => void }) {
  const [url, setUrl] = useState("");
  const [description, setDescription] = useState("");
  const [chosen, setChosen] = useState<WebhookEventType[]>([]);
  const [created, create] = useMutation(CreateWebhookEndpointDocument);
  const choose = (event: WebhookEventType, on: boolean) =>
    setChosen(on ? EVENTS.filter((e) => e === event || chosen.includes(e)) : chosen.filter((e) => e !== event));
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const result = await create({ input: { url: url.trim(), events: chosen, description: description.trim() || null } });
    const payload = result.data?.createWebhookEndpoint;
    if (payload?.secret && payload.webhookEndpoint) {
      onCreated(payload.webhookEndpoint.url, payload.secret);
      setUrl("");
      setDescription("");
      setChosen([]);
    }
  };
  return (
    <form onSubmit={submit}>
      <div className="inline">
        <label>
          URL <input type="url" className="wide" data-testid="webhook-url" value={url} onChange={(e) => setUrl(e.target.value)} required />
        </label>
        <label>
          Description <input data-testid="webhook-description" value={description} onChange={(e) => setDescription(e.target.value)} maxLength={200} />
        </label>
      </div>
      <fieldset className="events">
        <legend>Events (at least one)</legend>
        {EVENTS.map((event) => (
          <label key={event}>
            <input
              type="checkbox"
              data-testid="webhook-event"
              value={event}
              checked={chosen.includes(event)}
              onChange={(e) => choose(event, e.target.checked)}
            />{" "}
            {EVENT_NAMES[event]}
          </label>
        ))}
      </fieldset>
      <div className="inline">
        <button type="submit" data-testid="webhook-create" disabled={created.fetching || chosen.length === 0}>
          Add endpoint
        </button>
        <Problems error={created.error} userErrors={created.data?.createWebhookEndpoint.userErrors} />
      </div>
    </form>
  );
}

function EndpointRow({ endpoint, onChanged }: { endpoint: Endpoint; onChanged: () => void }) {
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [updated, update] = useMutation(UpdateWebhookEndpointDocument);
  const [tested, test] = useMutation(SendTestWebhookEventDocument);
  const [deleted, remove] = useMutation(DeleteWebhookEndpointDocument);
  const input = { id: endpoint.id };
  return (
    <div className="endpoint" data-testid="webhook-endpoint">
      <div className="actions">
        <code data-testid="webhook-endpoint-url">{endpoint.url}</code>
        {endpoint.description && <span className="muted">{endpoint.description}</span>}
        <strong data-testid="webhook-state">{endpoint.enabled ? "Enabled" : "Disabled"}</strong>
        <button
          type="button"
          data-testid="webhook-toggle"
          aria-pressed={endpoint.enabled}
          disabled={updated.fetching}
          onClick={() => void update({ input: { ...input, enabled: !endpoint.enabled } }).then(onChanged)}
        >
          {endpoint.enabled ? "Disable" : "Enable"}
        </button>
        <button type="button" data-testid="webhook-test" disabled={!endpoint.enabled || tested.fetching} onClick={() => void test({ input: { endpointId: endpoint.id } }).then(onChanged)}>
          Send test event
        </button>
        {confirmDelete ? (
          <button type="button" className="danger" data-testid="webhook-delete-confirm" disabled={deleted.fetching} onClick={() => void remove({ input }).then(onChanged)}>
            Really delete
          </button>
        ) : (
          <button type="button" data-testid="webhook-delete" onClick={() => setConfirmDelete(true)}>
            Delete
          </button>
        )}
      </div>
      <p className="muted" data-testid="webhook-endpoint-events">
        {endpoint.events.map((e) => EVENT_NAMES[e]).join(", ")}
      </p>
      <Problems
        error={updated.error ?? tested.error ?? deleted.error}
        userErrors={[
          ...(updated.data?.updateWebhookEndpoint.userErrors ?? []),
          ...(tested.data?.sendTestWebhookEvent.userErrors ?? []),
          ...(deleted.data?.deleteWebhookEndpoint.userErrors ?? []),
        ]}
      />
      <table>
        <thead>
          <tr>
            <th>Event</th>
            <th>Status</th>
            <th>Attempts</th>
            <th>Next attempt</th>
            <th>Each attempt</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {endpoint.deliveries.edges.map(({ node }) => (
            <DeliveryRow key={node.id} delivery={node} endpoint={endpoint} onRedelivered={onChanged} />
          ))}
        </tbody>
      </table>
      <p className="muted">
        {count(endpoint.deliveries.totalCount, "delivery", "deliveries")}, latest first
      </p>
    </div>
  );
}

function DeliveryRow({ delivery, endpoint, onRedelivered }: { delivery: Delivery; endpoint: Endpoint; onRedelivered: () => void }) {
  const [redelivered, redeliver] = useMutation(RedeliverWebhookEventDocument);
  return (
    <tr data-testid="webhook-delivery" data-status={delivery.status}>
      <td data-testid="webhook-delivery-type">{delivery.event.type}</td>
      <td data-testid="webhook-delivery-status">{delivery.status}</td>
      <td data-testid="webhook-delivery-attempts">{delivery.attemptCount}</td>
      <td data-testid="webhook-delivery-next">{delivery.nextAttemptAt ? when(delivery.nextAttemptAt) : "—"}</td>
      <td>
        <ol>
          {delivery.attempts.map((a) => (
            <li key={a.attempt} data-testid="webhook-attempt">
              {a.statusCode ?? "no response"}
              {a.error && `: ${a.error}`} at {when(a.at)}
            </li>
          ))}
        </ol>
      </td>
      <td>
        <button
          type="button"
          data-testid="webhook-redeliver"
          disabled={!endpoint.enabled || redelivered.fetching}
          onClick={() => void redeliver({ input: { eventId: delivery.event.id, endpointId: endpoint.id } }).then(onRedelivered)}
        >
          Redeliver
        </button>
        <Problems error={redelivered.error} userErrors={redelivered.data?.redeliverWebhookEvent.userErrors} />
      </td>
    </tr>
  );
}
