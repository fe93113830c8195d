/**
 * Money as the API gives it: decimal strings ("19.99") with a currency, shown as they are. Sums the API
 * does not give (a cart's total) are made in integer cents (BigInt), never in floating point.
 */

export function formatMoney(amount, currency) {
  try {
    // A string is formatted as the exact decimal it spells (Intl.NumberFormat v3).
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
  } catch {
    return `${amount} ${currency}`;
  }
}

function toCents(amount) {
  const match = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(String(amount));
  if (!match) throw new Error(`not an amount: ${amount}`);
  const cents = BigInt(match[2]) * 100n + BigInt((match[3] ?? "0").padEnd(2, "0"));
  return match[1] ? -cents : cents;
}

/** Integer minor units (the payments API's amounts) as a decimal string: 3998 -> "39.98". */
export function fromMinorUnits(minor) {
  const cents = BigInt(minor);
  const sign = cents < 0n ? "-" : "";
  const absolute = cents < 0n ? -cents : cents;
  return `${sign}${absolute / 100n}.${String(absolute % 100n).padStart(2, "0")}`;
}

export function lineTotal(price, qty) {
  return fromMinorUnits(toCents(price) * BigInt(qty));
}

export function sumAmounts(amounts) {
  return fromMinorUnits(amounts.reduce((total, amount) => total + toCents(amount), 0n));
}

export function isZero(amount) {
  return toCents(amount) === 0n;
}
