import { useState, type FormEvent } from "react";
import { useMutation } from "urql";

import { Problems } from "../errors";
import { TestApiKeyDocument } from "../gql/graphql";
import { formatInUnit, unitName } from "../money";
import { useUnit } from "../viewer";

/** The Test button: what the gateway's authorize would answer for this key and model
 * now (no hold is placed), allowed or its exact refusal, with the envelope headers. */
export function KeyTest({ id, onDone }: { id: string; onDone: () => void }) {
  const [model, setModel] = useState("");
  const [hold, setHold] = useState("");
  const [tested, test] = useMutation(TestApiKeyDocument);
  const unit = useUnit();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void test({ input: { id, model: model.trim(), holdUsd: hold.trim() || null } });
  };
  const payload = tested.data?.testApiKey;
  return (
    <form className="inline" onSubmit={submit}>
      <label>
        Model <input data-testid="key-test-model" value={model} onChange={(e) => setModel(e.target.value)} placeholder="claude-sonnet-4-6" required />
      </label>
      <label>
        Hold ({unitName(unit)}) <input data-testid="key-test-hold" inputMode="decimal" value={hold} onChange={(e) => setHold(e.target.value)} placeholder="none" />
      </label>
      <button type="submit" data-testid="key-test-run" disabled={tested.fetching}>
        Run test
      </button>
      <button type="button" onClick={onDone}>
        Close
      </button>
      <Problems error={tested.error} userErrors={payload?.userErrors} />
      {payload && payload.allowed != null && (
        <div data-testid="key-test-result">
          {payload.allowed ? (
            <strong>Allowed{payload.hold && payload.hold.credits !== "0" && `, holding ${formatInUnit(payload.hold.usd, unit)}`}</strong>
          ) : (
            payload.refusal && (
              <strong className="error">
                Refused: {payload.refusal.status} {payload.refusal.code}: {payload.refusal.message}
                {payload.refusal.retryAfterSeconds != null && ` (retry after ${payload.refusal.retryAfterSeconds} s)`}
              </strong>
            )
          )}
          <ul className="muted">
            {payload.envelope.map((h) => (
              <li key={h.name}>
                {h.name}: {h.value}
              </li>
            ))}
          </ul>
        </div>
      )}
    </form>
  );
}
