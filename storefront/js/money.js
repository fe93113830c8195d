/**
 * Money as the API gives it: decimal strings ("19.99", "1999.00") with a currency, shown with the
 * currency's own decimals (USD two, JPY none: "¥1,999") and never rounded. Sums the API does not give (a
 * cart's total) are made in integer hundredths (BigInt), never in floating point.
 */

// Currencies whose smallest unit is the unit itself: the API's ZERO_DECIMAL_CURRENCIES
// (event_schemas/money.py; tests/unit/test_storefront_pages.py keeps the two lists the same).
const ZERO_DECIMAL_CURRENCIES = new Set([
  "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
]);

/** How many decimals an amount of the currency has: 0 for a zero-decimal currency, else 2. */
export function currencyDecimals(currency) {
  return ZERO_DECIMAL_CURRENCIES.has(currency) ? 0 : 2;
}

function hundredthsOrNull(amount) {
  const match = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(String(amount));
  if (!match) return null;
  const hundredths = BigInt(match[2]) * 100n + BigInt((match[3] ?? "0").padEnd(2, "0"));
  return match[1] ? -hundredths : hundredths;
}

function toHundredths(amount) {
  const hundredths = hundredthsOrNull(amount);
  if (hundredths === null) throw new Error(`not an amount: ${amount}`);
  return hundredths;
}

function decimalText(hundredths, decimals) {
  const sign = hundredths < 0n ? "-" : "";
  const absolute = hundredths < 0n ? -hundredths : hundredths;
  const whole = `${sign}${absolute / 100n}`;
  return decimals === 0 ? whole : `${whole}.${String(absolute % 100n).padStart(2, "0")}`;
}

/** The amount in the currency's decimals: "1999.00" JPY -> "¥1,999", "19.99" USD -> "$19.99". An amount
 * finer than its currency can hold (which the API refuses) keeps its cents rather than being rounded. */
export function formatMoney(amount, currency) {
  const hundredths = hundredthsOrNull(amount);
  if (hundredths === null) return `${amount} ${currency}`;
  const decimals = currencyDecimals(currency) === 0 && hundredths % 100n === 0n ? 0 : 2;
  const text = decimalText(hundredths, decimals);
  try {
    // A string is formatted as the exact decimal it spells (Intl.NumberFormat v3).
    const format = { style: "currency", currency, minimumFractionDigits: decimals, maximumFractionDigits: decimals };
    return new Intl.NumberFormat(undefined, format).format(text);
  } catch {
    return `${text} ${currency}`;
  }
}

/** Integer minor units (the payments API's amounts) as a decimal string in the currency's decimals:
 * 3998 USD -> "39.98", 1999 JPY -> "1999". */
export function fromMinorUnits(minor, currency) {
  const units = BigInt(minor);
  return currencyDecimals(currency) === 0 ? String(units) : decimalText(units, 2);
}

export function lineTotal(price, qty) {
  return decimalText(toHundredths(price) * BigInt(qty), 2);
}

export function sumAmounts(amounts) {
  return decimalText(amounts.reduce((total, amount) => total + toHundredths(amount), 0n), 2);
}

export function isZero(amount) {
  return toHundredths(amount) === 0n;
}
