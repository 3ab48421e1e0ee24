import { Elements, PaymentElement, useElements, useStripe } from "@stripe/react-stripe-js";
// The pure entry loads Stripe.js from Stripe only when a payment needs it, not on page load.
import { loadStripe } from "@stripe/stripe-js/pure";
import { useMemo, useState, type FormEvent } from "react";
import { useMutation, useQuery, useSubscription } from "urql";

import { Problems } from "../errors";
import { CreateTopUpDocument, PlansDocument, TopUpQuoteDocument, TopUpUpdatedDocument } from "../gql/graphql";
import { formatCredits, formatPlanCredits, formatUsd } from "../money";
import { useUnit, useWalletOverview } from "../viewer";

// Top-ups are whole cents; anything else is not worth asking the server to quote.
const AMOUNT = /^\d+(\.\d{1,2})?$/;

// What topUpQuote and createTopUp both take: an amount in a USD wallet, a pack in a
// plan-credit one (8bit-ai, where an amount is PACK_REQUIRED).
type Purchase = { amountUsd: string } | { packId: string };

/** Quote, then pay: the fake provider settles at once; with Stripe the returned
 * clientSecret is confirmed with Stripe Elements (or the payer goes to Checkout). */
export function TopUp({ stripePublishableKey }: { stripePublishableKey: string }) {
  const [overview] = useWalletOverview();
  const [catalog] = useQuery({ query: PlansDocument });
  const org = overview.data?.viewer.organization;
  const unit = useUnit();
  const [amount, setAmount] = useState("25.00");
  const [packId, setPackId] = useState("");
  // The packs of the organization's plan; null in a USD wallet.
  const packs =
    unit === null || unit === "usd"
      ? null
      : (catalog.data?.plans.find((p) => p.code === org?.subscription?.plan.code)?.creditPacks ?? []);
  const pack = packs?.find((p) => p.id === packId) ?? packs?.[0];
  // Nothing to quote until the wallet's unit says which of the two it takes.
  let purchase: Purchase | null = null;
  if (pack) purchase = { packId: pack.id };
  else if (unit === "usd" && AMOUNT.test(amount.trim())) purchase = { amountUsd: amount.trim() };
  const [quote] = useQuery({ query: TopUpQuoteDocument, variables: purchase ?? {}, pause: purchase === null });
  const [created, create] = useMutation(CreateTopUpDocument);
  // Settlement arrives as topUpUpdated (at once with the fake provider, by webhook with Stripe).
  const [updated] = useSubscription({ query: TopUpUpdatedDocument });
  const payload = created.data?.createTopUp;
  const topUp = payload?.topUp;
  const pushed = updated.data?.topUpUpdated;
  const status = pushed && topUp && pushed.id === topUp.id ? pushed.status : topUp?.status;
  const q = purchase ? quote.data?.topUpQuote : undefined;

  let shown: string;
  if (q) {
    shown = packs
      ? `${formatPlanCredits(q.creditsDelivered.usd)} for ${formatUsd(q.amount.usd)}`
      : `${formatCredits(q.creditsDelivered.credits)} credits (${formatUsd(q.creditsDelivered.usd)}), incl. a ${q.bonusPercent}% bonus of ${formatUsd(q.bonus.usd)}`;
  } else if (purchase) {
    shown = quote.error?.message ?? "…";
  } else if (!packs) {
    shown = "Enter an amount in dollars and cents.";
  } else {
    // Enterprise's credits come by contract, and without a plan nothing is for sale.
    shown = catalog.error?.message ?? (catalog.data ? "No credit packs are sold on this organization's plan." : "…");
  }

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (purchase) void create({ input: purchase });
  };
  if (unit === null) {
    return (
      <section>
        <h2>Top up</h2>
        <p className={overview.error ? "error" : "muted"}>{overview.error?.message ?? "…"}</p>
      </section>
    );
  }
  return (
    <section>
      <h2>{packs ? "Buy credits" : "Top up"}</h2>
      <form className="inline" onSubmit={submit}>
        {packs ? (
          <label>
            Credit pack{" "}
            <select data-testid="topup-pack" value={pack?.id ?? ""} onChange={(e) => setPackId(e.target.value)} disabled={!pack}>
              {packs.map((p) => (
                <option key={p.id} value={p.id}>
                  {formatPlanCredits(p.credits.usd)} for {formatUsd(p.priceUsd)}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <label>
            Amount (USD) <input data-testid="topup-amount" inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} />
          </label>
        )}
        <button type="submit" data-testid="topup-submit" disabled={!purchase || created.fetching}>
          Pay
        </button>
      </form>
      <p data-testid="topup-quote">{shown}</p>
      <Problems error={created.error} userErrors={payload?.userErrors} />
      {topUp && (
        <p>
          Top-up of {formatUsd(topUp.amount.usd)}
          {packs && ` (${formatPlanCredits(topUp.creditsBought.usd)})`}: <strong data-testid="topup-status">{status}</strong>
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
