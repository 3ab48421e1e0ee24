import type { CombinedError } from "urql";

interface UserError {
  field?: string | null;
  message: string;
  code: string;
}

/** A mutation's outcome for the user: its transport/GraphQL error or its userErrors. */
export function Problems({ error, userErrors }: { error?: CombinedError; userErrors?: UserError[] }) {
  const messages = [
    ...(error ? [error.message] : []),
    ...(userErrors ?? []).map((e) => `${e.message} (${e.code})`),
  ];
  if (messages.length === 0) return null;
  return (
    <ul className="error" role="alert">
      {messages.map((m) => (
        <li key={m}>{m}</li>
      ))}
    </ul>
  );
}
