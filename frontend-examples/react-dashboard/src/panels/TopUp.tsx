import { Elements, PaymentElement, useElements, useStripe } from "@stripe/react-stripe-js";
// The pure entry loads Stripe.js from Stripe only when a payment needs it, not on page load.
import { loadStripe } from "@stripe/stripe-js/pure";
import { useMemo, useState, type FormEvent } from "react";
import { useMutation, useQuery, useSubscription } from "urql";

import { Problems } from "../errors";
import { CreateTopUpDocument, TopUpQuoteDocument, TopUpUpdatedDocument } from "../gql/graphql";
import { formatCredits, formatUsd } from "../money";

// Top-ups are whole cents; anything else is not worth asking the server to quote.
const AMOUNT = /^\d+(\.\d{1,2})?$/;

/** Quote, then pay: the fake provider settles at once; with Stripe the returned
 * clientSecret is confirmed with Stripe Elements (or the payer goes to Checkout). */
export function TopUp({ stripePublishableKey }: { stripePublishableKey: string }) {
  const [amount, setAmount] = useState("25.00");
  const valid = AMOUNT.test(amount.trim());
  const [quote] = useQuery({ query: TopUpQuoteDocument, variables: { amountUsd: amount.trim() }, pause: !valid });
  const [created, create] = useMutation(CreateTopUpDocument);
  // Settlement arrives as topUpUpdated (at once with the fake provider, by webhook with Stripe).
  const [updated] = useSubscription({ query: TopUpUpdatedDocument });
  const payload = created.data?.createTopUp;
  const topUp = payload?.topUp;
  const pushed = updated.data?.topUpUpdated;
  const status = pushed && topUp && pushed.id === topUp.id ? pushed.status : topUp?.status;
  const q = valid ? quote.data?.topUpQuote : undefined;

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void create({ input: { amountUsd: amount.trim() } });
  };
  return (
    <section>
      <h2>Top up</h2>
      <form className="inline" onSubmit={submit}>
        <label>
          Amount (USD) <input data-testid="topup-amount" inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} />
        </label>
        <button type="submit" data-testid="topup-submit" disabled={!valid || created.fetching}>
          Pay
        </button>
      </form>
      <p data-testid="topup-quote">
        {!valid
          ? "Enter an amount in dollars and cents."
          : q
            ? `${formatCredits(q.creditsDelivered.credits)} credits (${formatUsd(q.creditsDelivered.usd)}), incl. a ${q.bonusPercent}% bonus of ${formatUsd(q.bonus.usd)}`
            : quote.error
              ? quote.error.message
              : "…"}
      </p>
      <Problems error={created.error} userErrors={payload?.userErrors} />
      {topUp && (
        <p>
          Top-up of {formatUsd(topUp.amount.usd)}: <strong data-testid="topup-status">{status}</strong>
          {pushed?.failureReason && ` (${pushed.failureReason})`}
        </p>
      )}
      {payload?.checkoutUrl && (
        <p>
          <a href={payload.checkoutUrl}>Continue to payment</a>
        </p>
      )}
      {payload?.clientSecret && status === "PENDING" &&
        (stripePublishableKey ? (
          <StripePayment publishableKey={stripePublishableKey} clientSecret={payload.clientSecret} />
        ) : (
          <p className="error">Stripe is configured on the server: set VITE_STRIPE_PUBLISHABLE_KEY to pay by card here.</p>
        ))}
    </section>
  );
}

function StripePayment({ publishableKey, clientSecret }: { publishableKey: string; clientSecret: string }) {
  const stripe = useMemo(() => loadStripe(publishableKey), [publishableKey]);
  return (
    <Elements stripe={stripe} options={{ clientSecret }}>
      <ConfirmCard />
    </Elements>
  );
}

function ConfirmCard() {
  const stripe = useStripe();
  const elements = useElements();
  const [error, setError] = useState<string | null>(null);
  const confirm = async (event: FormEvent) => {
    event.preventDefault();
    if (!stripe || !elements) return;
    // The webhook settles the top-up; topUpUpdated then updates the status shown above.
    const result = await stripe.confirmPayment({ elements, redirect: "if_required" });
    setError(result.error?.message ?? null);
  };
  return (
    <form onSubmit={confirm}>
      <PaymentElement />
      <button type="submit" disabled={!stripe}>
        Confirm payment
      </button>
      {error && <p className="error">{error}</p>}
    </form>
  );
}
