/** A secret shown once (a new API key's, a webhook endpoint's signing secret) or revealed
 * again. The caller holds it in state only while this is open and drops it on close, so
 * it is then nowhere in the page. `testid` names the secret; the dialog and its close
 * button are `${testid}-dialog` and `${testid}-close`. */
export function SecretDialog({
  testid,
  title,
  secret,
  revealed = false,
  onClose,
}: {
  testid: string;
  title: string;
  secret: string;
  revealed?: boolean;
  onClose: () => void;
}) {
  return (
    <div className="dialog-backdrop">
      <div role="dialog" aria-modal="true" aria-labelledby={`${testid}-title`} data-testid={`${testid}-dialog`}>
        <h3 id={`${testid}-title`}>{title}</h3>
        <p>
          {revealed
            ? "Revealed again: this is recorded in the audit log."
            : "Copy it now: it is shown once and cannot be shown again."}
        </p>
        <code className="secret" data-testid={testid}>
          {secret}
        </code>
        <div className="actions">
          <button type="button" onClick={() => void navigator.clipboard?.writeText(secret)}>
            Copy
          </button>
          <button type="button" data-testid={`${testid}-close`} onClick={onClose}>
            I have saved it
          </button>
        </div>
      </div>
    </div>
  );
}
