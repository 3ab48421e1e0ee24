import { useState } from "react";
import { useMutation, useQuery } from "urql";

import { Problems } from "../errors";
import {
  PaymentMethodsDocument,
  RemovePaymentMethodDocument,
  SetDefaultPaymentMethodDocument,
  type PaymentMethodsQuery,
} from "../gql/graphql";
import { isAdmin, useRole } from "../viewer";

type Card = NonNullable<PaymentMethodsQuery["viewer"]["organization"]["paymentMethods"]>[number];

// Choosing or removing a card answers with auto-reload's state (removing, with nothing
// else), and a top-up may save a card: each refetches the list, also once it is empty.
const CONTEXT = { additionalTypenames: ["PaymentMethod", "AutoReload", "BillingTransaction"] };

/** The saved cards, owners and admins only (the list is FORBIDDEN to other roles): the
 * default one is what auto-reload, autoScale and overage billing charge. */
export function SavedCards() {
  return isAdmin(useRole()) ? <CardList /> : null;
}

function CardList() {
  const [result] = useQuery({ query: PaymentMethodsDocument, context: CONTEXT });
  const cards = result.data?.viewer.organization.paymentMethods;
  return (
    <section data-testid="saved-cards">
      <h2>Saved cards</h2>
      {result.error && <p className="error">{result.error.message}</p>}
      {cards?.length === 0 && <p className="muted">No card saved yet: a top-up paid by card saves one.</p>}
      <table>
        <tbody>
          {cards?.map((card) => <CardRow key={card.id} card={card} />)}
        </tbody>
      </table>
    </section>
  );
}

function CardRow({ card }: { card: Card }) {
  const [confirmRemove, setConfirmRemove] = useState(false);
  const [chosen, choose] = useMutation(SetDefaultPaymentMethodDocument);
  const [removed, remove] = useMutation(RemovePaymentMethodDocument);
  const input = { paymentMethodId: card.id };
  return (
    <tr data-testid="card-row" data-id={card.id}>
      <td>
        {card.brand} •••• {card.last4}
      </td>
      <td>
        expires {String(card.expMonth).padStart(2, "0")}/{card.expYear}
      </td>
      <td>{card.isDefault && <strong data-testid="card-default">default</strong>}</td>
      <td>
        <div className="actions">
          {!card.isDefault && !confirmRemove && (
            <button type="button" data-testid="card-make-default" disabled={chosen.fetching} onClick={() => void choose({ input })}>
              Make default
            </button>
          )}
          {confirmRemove ? (
            <>
              <button
                type="button"
                data-testid="card-remove-confirm"
                className="danger"
                disabled={removed.fetching}
                onClick={() => void remove({ input }).then(() => setConfirmRemove(false))}
              >
                Really remove
              </button>
              <button type="button" data-testid="card-remove-cancel" onClick={() => setConfirmRemove(false)}>
                Cancel
              </button>
            </>
          ) : (
            <button type="button" data-testid="card-remove" onClick={() => setConfirmRemove(true)}>
              Remove
            </button>
          )}
        </div>
        <Problems
          error={chosen.error ?? removed.error}
          userErrors={[
            ...(chosen.data?.setDefaultPaymentMethod.userErrors ?? []),
            ...(removed.data?.removePaymentMethod.userErrors ?? []),
          ]}
        />
      </td>
    </tr>
  );
}
