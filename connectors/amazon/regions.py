"""SP-API regions, their hosts and marketplaces (developer-docs: sp-api-endpoints,
marketplace-ids, seller-central-urls). Authorizations are regional: one consent covers a
region's marketplaces, but the consent page is on the Seller Central URL of the seller's own
marketplace, from Amazon's "Seller Central URLs" table
(https://developer-docs.amazon.com/sp-api/docs/seller-central-urls; as published in
amzn/selling-partner-api-docs, guides/en-US/developer-guide/SellingPartnerApiDeveloperGuide.md
at 24bcb9b, the last version kept in that repository): Spain, UK, France, Germany and Italy
share https://sellercentral-europe.amazon.com; every other marketplace has its own
``sellercentral.amazon.<domain>``. docs/amazon.md says which rows come from where."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.errors import InvalidInput


@dataclass(frozen=True)
class Marketplace:
    id: str
    country: str
    name: str
    currency: str
    language: str
    domain: str
    region: str

    @property
    def seller_central_host(self) -> str:
        """The marketplace's Seller Central URL host in Amazon's table, where its sellers
        sign in and authorize apps: the European one for the five that share it, else
        ``sellercentral.amazon.<tld>``."""
        return SELLER_CENTRAL_EUROPE if self.country in EUROPE_SHARED else self.own_host

    @property
    def own_host(self) -> str:
        """``sellercentral.amazon.<tld>`` (for the five sharing the European host, an
        address Amazon also answers on, e.g. an Appstore callback's)."""
        return "sellercentral." + self.domain.removeprefix("www.")


SELLER_CENTRAL_EUROPE = "sellercentral-europe.amazon.com"
# Amazon's table: "Spain, UK, France, Germany, Italy -> https://sellercentral-europe.amazon.com".
EUROPE_SHARED = frozenset({"ES", "GB", "FR", "DE", "IT"})


# fmt: off
MARKETPLACES: dict[str, Marketplace] = {
    m.id: m
    for m in (
        Marketplace("ATVPDKIKX0DER", "US", "Amazon.com", "USD", "en_US", "www.amazon.com", "na"),
        Marketplace("A2EUQ1WTGCTBG2", "CA", "Amazon.ca", "CAD", "en_CA", "www.amazon.ca", "na"),
        Marketplace("A1AM78C64UM0Y8", "MX", "Amazon.com.mx", "MXN", "es_MX", "www.amazon.com.mx", "na"),  # noqa: E501
        Marketplace("A2Q3Y263D00KWC", "BR", "Amazon.com.br", "BRL", "pt_BR", "www.amazon.com.br", "na"),  # noqa: E501
        Marketplace("A1F83G8C2ARO7P", "GB", "Amazon.co.uk", "GBP", "en_GB", "www.amazon.co.uk", "eu"),  # noqa: E501
        Marketplace("A1PA6795UKMFR9", "DE", "Amazon.de", "EUR", "de_DE", "www.amazon.de", "eu"),
        Marketplace("A13V1IB3VIYZZH", "FR", "Amazon.fr", "EUR", "fr_FR", "www.amazon.fr", "eu"),
        Marketplace("APJ6JRA9NG5V4", "IT", "Amazon.it", "EUR", "it_IT", "www.amazon.it", "eu"),
        Marketplace("A1RKKUPIHCS9HS", "ES", "Amazon.es", "EUR", "es_ES", "www.amazon.es", "eu"),
        Marketplace("A1805IZSGTT6HS", "NL", "Amazon.nl", "EUR", "nl_NL", "www.amazon.nl", "eu"),
        Marketplace("A2NODRKZP88ZB9", "SE", "Amazon.se", "SEK", "sv_SE", "www.amazon.se", "eu"),
        Marketplace("AE08WJ6YKNBMC", "ZA", "Amazon.co.za", "ZAR", "en_ZA", "www.amazon.co.za", "eu"),  # noqa: E501
        Marketplace("A1C3SOZRARQ6R3", "PL", "Amazon.pl", "PLN", "pl_PL", "www.amazon.pl", "eu"),
        Marketplace("AMEN7PMS3EDWL", "BE", "Amazon.com.be", "EUR", "fr_BE", "www.amazon.com.be", "eu"),  # noqa: E501
        Marketplace("A28R8C7NBKEWEA", "IE", "Amazon.ie", "EUR", "en_IE", "www.amazon.ie", "eu"),
        Marketplace("A33AVAJ2PDY3EV", "TR", "Amazon.com.tr", "TRY", "tr_TR", "www.amazon.com.tr", "eu"),  # noqa: E501
        Marketplace("A2VIGQ35RCS4UG", "AE", "Amazon.ae", "AED", "en_AE", "www.amazon.ae", "eu"),
        Marketplace("A17E79C6D8DWNP", "SA", "Amazon.sa", "SAR", "ar_SA", "www.amazon.sa", "eu"),
        Marketplace("ARBP9OOSHTCHU", "EG", "Amazon.eg", "EGP", "ar_EG", "www.amazon.eg", "eu"),
        Marketplace("A21TJRUUN4KGV", "IN", "Amazon.in", "INR", "en_IN", "www.amazon.in", "eu"),
        Marketplace("A1VC38T7YXB528", "JP", "Amazon.co.jp", "JPY", "ja_JP", "www.amazon.co.jp", "fe"),  # noqa: E501
        Marketplace("A39IBJ37TRP1C6", "AU", "Amazon.com.au", "AUD", "en_AU", "www.amazon.com.au", "fe"),  # noqa: E501
        Marketplace("A19VAU5U5O7RUS", "SG", "Amazon.sg", "SGD", "en_SG", "www.amazon.sg", "fe"),
    )
}
# fmt: on
REGIONS = ("na", "eu", "fe")
REGION_MARKETPLACES: dict[str, tuple[str, ...]] = {
    region: tuple(m.id for m in MARKETPLACES.values() if m.region == region) for region in REGIONS
}
# Seller Central host -> marketplace (vendors would use Vendor Central: not supported): each
# table host (the European one names the UK, the first of its five: the region is what
# matters), then each marketplace's own host.
SELLER_CENTRAL_HOSTS: dict[str, Marketplace] = {}
for _marketplace in MARKETPLACES.values():
    SELLER_CENTRAL_HOSTS.setdefault(_marketplace.seller_central_host, _marketplace)
    SELLER_CENTRAL_HOSTS.setdefault(_marketplace.own_host, _marketplace)
LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"  # noqa: S105  one host for all regions


def validate_region(region: str | None) -> str:
    value = (region or "").strip().lower()
    if value not in REGIONS:
        raise InvalidInput(f"Amazon region must be one of {', '.join(REGIONS).upper()}")
    return value


def validate_marketplaces(region: str, marketplaces: list[str] | tuple[str, ...]) -> list[str]:
    wrong = [m for m in marketplaces if MARKETPLACES.get(m) is None]
    if wrong:
        raise InvalidInput(f"unknown Amazon marketplace id: {', '.join(wrong)}")
    elsewhere = [m for m in marketplaces if MARKETPLACES[m].region != region]
    if elsewhere:
        raise InvalidInput(
            f"marketplaces {', '.join(elsewhere)} are not in the {region.upper()} region"
        )
    return list(marketplaces)


def sp_api_base(region: str, base_url: str | None) -> str:
    """``https://sellingpartnerapi-{region}.amazon.com`` or ``{base}/sp/{region}``."""
    region = validate_region(region)
    return (
        f"{base_url}/sp/{region}" if base_url else f"https://sellingpartnerapi-{region}.amazon.com"
    )


def primary_marketplace(region: str, marketplaces: list[str] | tuple[str, ...] | None) -> str:
    """The integration's first marketplace, or the region's first when none was chosen."""
    region = validate_region(region)
    chosen = [m for m in marketplaces or () if m in MARKETPLACES]
    return chosen[0] if chosen else REGION_MARKETPLACES[region][0]


def seller_central_base(marketplace_id: str, base_url: str | None) -> str:
    """``https://sellercentral.amazon.<tld>`` of a marketplace, or
    ``{base}/sellercentral/<that host>`` in the sandbox; raises InvalidInput."""
    marketplace = MARKETPLACES.get(marketplace_id)
    if marketplace is None:
        raise InvalidInput(f"unknown Amazon marketplace id: {marketplace_id}")
    host = marketplace.seller_central_host
    return f"{base_url}/sellercentral/{host}" if base_url else f"https://{host}"


def lwa_token_url(base_url: str | None) -> str:
    return f"{base_url}/lwa/auth/o2/token" if base_url else LWA_TOKEN_URL
