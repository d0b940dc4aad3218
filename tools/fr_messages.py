"""The French translations, kept as a table while the catalog is written by hand.

``python tools/update_catalogs.py`` extracts the messages, updates the ``.po``
files and fills them from this table; the catalog stays the source of truth
that ships (tests check every message has a French translation).
"""

FR = {
    "a valid X-Auth-Token is required": "un X-Auth-Token valide est requis",
    "the request body is too large": "le corps de la requête est trop volumineux",
    "no such resource: %(path)s": "ressource inexistante : %(path)s",
    "%(method)s is not allowed on %(path)s": "%(method)s n'est pas autorisé sur %(path)s",
    "field '%(field)s' is given twice": "le champ « %(field)s » est donné deux fois",
    "%(value)s is not a JSON value here": "%(value)s n'est pas une valeur JSON ici",
    "the request body is larger than %(limit)d bytes":
        "le corps de la requête dépasse %(limit)d octets",
    "a JSON object is expected in the body":
        "un objet JSON est attendu dans le corps de la requête",
    "the body must be application/json": "le corps de la requête doit être en application/json",
    "the body is not UTF-8": "le corps de la requête n'est pas en UTF-8",
    "malformed JSON: %(error)s": "JSON mal formé : %(error)s",
    "malformed JSON: nested too deep": "JSON mal formé : imbrication trop profonde",
    "unknown query parameter '%(name)s'": "paramètre de requête inconnu « %(name)s »",
    "query parameter '%(name)s' is given twice":
        "le paramètre de requête « %(name)s » est donné deux fois",
    "query parameter '%(name)s' is too long": "le paramètre de requête « %(name)s » est trop long",
    "limit is an integer from 1 to %(max)d": "limit est un entier de 1 à %(max)d",
    "status is one of %(statuses)s": "status vaut l'une de ces valeurs : %(statuses)s",
    "no credentials came with the request": "la requête ne porte aucune authentification",
    "policy does not allow %(rule)s on project %(project)s":
        "la politique d'accès n'autorise pas %(rule)s sur le projet %(project)s",
    "policy does not allow %(rule)s": "la politique d'accès n'autorise pas %(rule)s",
    "no credit %(id)s": "aucun crédit %(id)s",
    "no order %(id)s": "aucun bon de commande %(id)s",
    "Invalid request": "Requête invalide",
    "Invalid amount": "Montant invalide",
    "Authentication required": "Authentification requise",
    "Forbidden": "Accès refusé",
    "Not found": "Introuvable",
    "Unknown voucher": "Bon d'achat inconnu",
    "Method not allowed": "Méthode non autorisée",
    "Voucher already redeemed": "Bon d'achat déjà utilisé",
    "Currency mismatch": "Devise différente",
    "Order not pending": "Bon de commande non en attente",
    "Invalid state": "État incompatible",
    "Idempotency key reused": "Clé d'idempotence réutilisée",
    "Voucher expired": "Bon d'achat expiré",
    "Request body too large": "Corps de requête trop volumineux",
    "Too many voucher attempts": "Trop de tentatives de bons d'achat",
    "Internal error": "Erreur interne",
    "Voucher catalog unavailable": "Catalogue des bons d'achat indisponible",
    "Service unavailable": "Service indisponible",
    "internal error; the request id finds it in the logs":
        "erreur interne ; l'identifiant de la requête permet de la retrouver dans les journaux",
    "too many failed voucher activations on this project: try again in %(seconds)d seconds":
        "trop d'activations de bons d'achat ont échoué sur ce projet : "
        "réessayez dans %(seconds)d secondes",
    "no such voucher code": "ce code de bon d'achat n'existe pas",
    "the voucher catalog cannot be reached; try again later":
        "le catalogue des bons d'achat est injoignable ; réessayez plus tard",
    "the credit ledger is not ready": "le registre des crédits n'est pas prêt",
    "a voucher code must be text": "un code de bon d'achat doit être du texte",
    "a voucher code is 4 to 64 letters, digits or dashes":
        "un code de bon d'achat compte de 4 à 64 lettres, chiffres ou tirets",
    "this voucher code cannot be activated": "ce code de bon d'achat ne peut pas être activé",
    "invalid currency %(code)r: expected an ISO 4217 code":
        "devise %(code)r invalide : un code ISO 4217 est attendu",
    "unknown currency %(code)r": "devise %(code)r inconnue",
    "currency %(code)r has no minor unit": "la devise %(code)r n'a pas de subdivision",
    "%(field)s must be a decimal string, not %(value)r":
        "%(field)s doit être un nombre décimal écrit en texte, pas %(value)r",
    "%(field)s %(value)r is not a decimal number":
        "%(field)s %(value)r n'est pas un nombre décimal",
    "%(field)s must be a finite number, not %(value)r":
        "%(field)s doit être un nombre fini, pas %(value)r",
    "%(field)s %(value)r must be written as plain digits, like '12.50'":
        "%(field)s %(value)r doit s'écrire en chiffres, comme « 12.50 »",
    "%(field)s must not be negative: %(value)s": "%(field)s ne peut pas être négatif : %(value)s",
    "%(field)s must be greater than zero": "%(field)s doit être supérieur à zéro",
    "%(field)s %(value)s is too large": "%(field)s %(value)s est trop grand",
    "%(field)s %(value)s has more than %(places)d decimal places":
        "%(field)s %(value)s a plus de %(places)d décimales",
    "unknown marker %(marker)r": "marqueur %(marker)r inconnu",
    "voiding a credit needs a reason": "annuler un crédit demande un motif",
    "credit %(id)s is already voided (%(reason)s)":
        "le crédit %(id)s est déjà annulé (%(reason)s)",
    "idempotency key %(key)r was used for another order request":
        "la clé d'idempotence %(key)r a servi pour une autre demande de bon de commande",
    "payment of %(paid)s does not match order %(id)s (%(amount)s %(currency)s)":
        "le paiement de %(paid)s ne correspond pas au bon de commande %(id)s "
        "(%(amount)s %(currency)s HT)",
    "payment in %(paid)s does not match order %(id)s (%(currency)s)":
        "un paiement en %(paid)s ne correspond pas au bon de commande %(id)s (%(currency)s)",
    "order %(id)s is cancelled": "le bon de commande %(id)s est annulé",
    "order %(id)s has lapsed unpaid": "le bon de commande %(id)s a expiré sans être payé",
    "order %(id)s is %(status)s; only a pending order can be cancelled":
        "le bon de commande %(id)s est à l'état %(status)s ; seul un bon de commande "
        "en attente peut être annulé",
    "this voucher is in %(currency)s but project %(project)s bills in %(found)s":
        "ce bon d'achat est en %(currency)s mais le projet %(project)s est facturé en %(found)s",
    "the input is not UTF-8 (line %(line)d)": "l'entrée n'est pas en UTF-8 (ligne %(line)d)",
    "the input is not UTF-8": "l'entrée n'est pas en UTF-8",
    "the input is not a JSON array": "l'entrée n'est pas un tableau JSON",
    "the input must be an invoice object, an array of them, or JSON lines":
        "l'entrée doit être un objet facture, un tableau de factures ou des lignes JSON",
    "%(where)s: key %(key)r appears twice in one object":
        "%(where)s : la clé %(key)r apparaît deux fois dans un même objet",
    "%(where)s is not valid JSON: %(error)s": "%(where)s n'est pas du JSON valide : %(error)s",
    "no such invoice file: %(name)s": "fichier de factures introuvable : %(name)s",
    "invoice %(invoice)s of project %(project)s appears twice with different content":
        "la facture %(invoice)s du projet %(project)s apparaît deux fois avec un contenu "
        "différent",
    "invoice %(invoice)s of project %(project)s: its settlement key is recorded for invoice "
    "%(other_invoice)s of project %(other_project)s":
        "facture %(invoice)s du projet %(project)s : sa clé de règlement est enregistrée pour "
        "la facture %(other_invoice)s du projet %(other_project)s",
    "invoice %(invoice)s of project %(project)s was already settled with different content":
        "la facture %(invoice)s du projet %(project)s a déjà été réglée avec un contenu différent",
    "voucher file %(path)r is not readable: %(error)s":
        "le fichier de bons d'achat %(path)r est illisible : %(error)s",
    "unknown voucher %(code)s": "bon d'achat %(code)s inconnu",
    "voucher %(code)s is used up": "le bon d'achat %(code)s est épuisé",
    "voucher file %(path)r does not exist": "le fichier de bons d'achat %(path)r n'existe pas",
    "voucher file %(path)r is not readable JSON: %(error)s":
        "le fichier de bons d'achat %(path)r n'est pas du JSON lisible : %(error)s",
    'voucher file %(path)r must hold {"vouchers": [...]}':
        'le fichier de bons d\'achat %(path)r doit contenir {"vouchers": [...]}',
    "voucher #%(index)d of %(path)r is invalid: %(error)s at %(where)s":
        "le bon d'achat n° %(index)d de %(path)r est invalide : %(error)s (%(where)s)",
    "voucher #%(index)d of %(path)r is invalid: %(error)s":
        "le bon d'achat n° %(index)d de %(path)r est invalide : %(error)s",
    "voucher #%(index)d of %(path)r has an invalid code: codes are 4 to 64 letters, digits or "
    "dashes":
        "le bon d'achat n° %(index)d de %(path)r a un code invalide : un code compte de 4 à 64 "
        "lettres, chiffres ou tirets",
    "voucher #%(index)d of %(path)r repeats the code of an earlier voucher":
        "le bon d'achat n° %(index)d de %(path)r reprend le code d'un bon d'achat précédent",
    "notifications are off: set [oslo_messaging_notifications] driver "
    "(e.g. messagingv2 or log) before sending expiry warnings":
        "les notifications sont désactivées : définissez [oslo_messaging_notifications] "
        "driver (par exemple messagingv2 ou log) avant d'envoyer les avertissements "
        "d'expiration",
    "explain is true or false": "explain vaut true ou false",
    "give one of invoice and key": "donnez soit invoice, soit key",
    "project_id goes with invoice: a key names its project":
        "project_id va avec invoice : une clé désigne déjà son projet",
    "no settlement %(key)s": "aucun règlement %(key)s",
    "no credit %(id)s in project %(project)s": "aucun crédit %(id)s dans le projet %(project)s",
    "no settlement of invoice %(invoice)s of project %(project)s":
        "aucun règlement de la facture %(invoice)s du projet %(project)s",
    "line %(line)s: %(amount)s %(currency)s from credit %(credit)s (%(kind)s)":
        "ligne %(line)s : %(amount)s %(currency)s payés par le crédit %(credit)s (%(kind)s)",
    "recorded without an explanation": "enregistré sans explication",
    "line %(line)s: %(amount)s %(currency)s from credit %(credit)s (%(kind)s), place %(place)d "
    "in the consumption order (valid until %(valid_until)s, created %(created)s)":
        "ligne %(line)s : %(amount)s %(currency)s payés par le crédit %(credit)s (%(kind)s), "
        "rang %(place)d dans l'ordre de consommation (valable jusqu'au %(valid_until)s, créé "
        "le %(created)s)",
    "line %(line)s: %(amount)s %(currency)s from credit %(credit)s (%(kind)s), place %(place)d "
    "in the consumption order (no end date, created %(created)s)":
        "ligne %(line)s : %(amount)s %(currency)s payés par le crédit %(credit)s (%(kind)s), "
        "rang %(place)d dans l'ordre de consommation (sans date de fin, créé le %(created)s)",
    "credit %(skipped)s comes first but does not cover this line's product":
        "le crédit %(skipped)s passe avant mais ne couvre pas le produit de cette ligne",
    "credit %(skipped)s comes first but paid %(products)s, which credit %(credit)s does not "
    "cover":
        "le crédit %(skipped)s passe avant mais a payé %(products)s, que le crédit %(credit)s "
        "ne couvre pas",
    "too many failed voucher attempts on this project: try again later":
        "trop d'essais de bons d'achat ont échoué sur ce projet : réessayez plus tard",
    "too many failed voucher attempts on this project: try again after %(when)s":
        "trop d'essais de bons d'achat ont échoué sur ce projet : réessayez après %(when)s",
    "no purchase limits for %(currency)s: set [cloud_credit] purchase_min_amount and "
    "purchase_max_amount for it, e.g. %(example)s":
        "aucune limite d'achat pour %(currency)s : définissez [cloud_credit] "
        "purchase_min_amount et purchase_max_amount pour cette devise, par exemple "
        "%(example)s",
}
