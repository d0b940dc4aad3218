"""The French translations, kept as a table while the catalog is written by hand.

``python tools/update_catalogs.py`` extracts the messages, updates the ``.po``
files and fills them from this table; the catalog stays the source of truth
that ships (tests check every message has a French translation).

The vocabulary is the customer guide's (docs/translations.md, « Ajouter du crédit
cloud »): crédit cloud; voucher (the guide's own word, masculine: « Activer un
voucher », « le code du voucher »); bon de commande (purchase order); HT (amounts
before tax). A voided credit is « invalidé », a cancelled order « annulé ». No
count is put before a noun that would need a plural form (« 1 décimales »): the
French says « décimales : 2 » instead. Written with ordinary spaces: fr_typography
puts the no-break spaces French wants before « : ; ? ! » and inside guillemets.
"""

from fr_typography import french_table

FR = {
    "a valid X-Auth-Token is required": "un X-Auth-Token valide est requis",
    "the request body is too large": "le corps de la requête est trop volumineux",
    "no such resource: %(path)s": "ressource inexistante : %(path)s",
    "%(method)s is not allowed on %(path)s": "%(method)s n'est pas autorisé sur %(path)s",
    "the request is malformed": "la requête est mal formée",
    "the request path is not UTF-8: %(path)s":
        "le chemin de la requête n'est pas en UTF-8 : %(path)s",
    "the query string is not UTF-8": "les paramètres de requête ne sont pas en UTF-8",
    "answers are application/json only, which the Accept header refuses":
        "les réponses sont uniquement en application/json, ce que l'en-tête Accept refuse",
    "the request failed with HTTP status %(status)d":
        "la requête a échoué avec le statut HTTP %(status)d",
    "field '%(field)s' is given twice": "le champ « %(field)s » est donné deux fois",
    "%(value)s is not a JSON value here": "%(value)s n'est pas une valeur JSON ici",
    "the request body is larger than %(limit)s bytes":
        "le corps de la requête dépasse %(limit)s octets",
    "a JSON object is expected in the body":
        "un objet JSON est attendu dans le corps de la requête",
    "the body must be application/json": "le corps de la requête doit être en application/json",
    "the body is not UTF-8": "le corps de la requête n'est pas en UTF-8",
    "malformed JSON: %(error)s": "JSON mal formé : %(error)s",
    "a value is expected": "une valeur est attendue",
    "a property name in double quotes is expected":
        "un nom de propriété entre guillemets doubles est attendu",
    "':' is expected": "« : » est attendu",
    "',' is expected": "« , » est attendu",
    "a string is not closed": "une chaîne n'est pas fermée",
    "a control character is not allowed in a string":
        "un caractère de contrôle n'est pas permis dans une chaîne",
    "an escape sequence is not valid": "une séquence d'échappement n'est pas valide",
    "something follows the JSON value": "quelque chose suit la valeur JSON",
    "a trailing comma is not allowed": "une virgule finale n'est pas permise",
    "%(problem)s (line %(line)d, column %(column)d)":
        "%(problem)s (ligne %(line)d, colonne %(column)d)",
    "malformed JSON: nested too deep": "JSON mal formé : imbrication trop profonde",
    "malformed JSON: a number has too many digits":
        "JSON mal formé : un nombre a trop de chiffres",
    "unknown query parameter '%(name)s'": "paramètre de requête inconnu « %(name)s »",
    "query parameter '%(name)s' is given twice":
        "le paramètre de requête « %(name)s » est donné deux fois",
    "query parameter '%(name)s' is too long": "le paramètre de requête « %(name)s » est trop long",
    "limit is an integer from 1 to %(max)s": "limit est un entier de 1 à %(max)s",
    "status is one of %(statuses)s": "status vaut l'une de ces valeurs : %(statuses)s",
    "no credentials came with the request": "la requête ne porte aucune authentification",
    "policy does not allow %(rule)s on project %(project)s":
        "la politique d'accès n'autorise pas %(rule)s sur le projet %(project)s",
    "policy does not allow %(rule)s": "la politique d'accès n'autorise pas %(rule)s",
    "no credit %(id)s": "crédit %(id)s introuvable",
    "no order %(id)s": "aucun bon de commande %(id)s",
    "Invalid request": "Requête invalide",
    "Invalid amount": "Montant invalide",
    "Authentication required": "Authentification requise",
    "Forbidden": "Accès refusé",
    "Not found": "Introuvable",
    "Unknown voucher": "Voucher inconnu",
    "Method not allowed": "Méthode non autorisée",
    "Not acceptable": "Non acceptable",
    "Voucher already redeemed": "Voucher déjà utilisé",
    "Currency mismatch": "Devise différente",
    "Order not pending": "Bon de commande non en attente de paiement",
    "Invalid state": "État incompatible",
    "Idempotency key reused": "Clé d'idempotence réutilisée",
    "Voucher not valid": "Voucher non valable",
    "Request body too large": "Corps de requête trop volumineux",
    "Too many voucher attempts": "Trop de tentatives de voucher",
    "Internal error": "Erreur interne",
    "Voucher catalog unavailable": "Catalogue des vouchers indisponible",
    "Service unavailable": "Service indisponible",
    "Bad gateway": "Passerelle incorrecte",
    "Gateway timeout": "Délai de la passerelle dépassé",
    "Service temporarily unavailable": "Service temporairement indisponible",
    "the credit service is temporarily unavailable; try again later":
        "le service de crédit cloud est temporairement indisponible ; réessayez plus tard",
    "Length required": "Longueur requise",
    "a request body needs a Content-Length header: chunked bodies are not read here":
        "le corps d'une requête doit avoir un en-tête Content-Length : un corps envoyé par "
        "morceaux (chunked) n'est pas lu ici",
    "internal error; the request id finds it in the logs":
        "erreur interne ; l'identifiant de la requête permet de la retrouver dans les journaux",
    "no such voucher code": "ce code de voucher n'existe pas",
    "the voucher catalog cannot be reached; try again later":
        "le catalogue des vouchers est injoignable ; réessayez plus tard",
    "the credit ledger is not ready": "le registre des crédits n'est pas prêt",
    "a voucher code must be text": "un code de voucher doit être du texte",
    "a voucher code is 4 to 64 letters, digits or dashes":
        "un code de voucher compte de 4 à 64 lettres, chiffres ou tirets",
    "this voucher code cannot be activated": "ce code de voucher ne peut pas être activé",
    "invalid currency %(code)r: expected an ISO 4217 code":
        "devise %(code)r invalide : un code ISO 4217 est attendu",
    "unknown currency %(code)r": "devise %(code)r inconnue",
    "currency %(code)r has no minor unit": "la devise %(code)r n'a pas de subdivision",
    "%(field)s must be a decimal string, not %(value)r":
        "%(field)s : un nombre décimal écrit en texte est attendu, pas %(value)r",
    "%(field)s %(value)r is not a decimal number":
        "%(field)s : %(value)r n'est pas un nombre décimal",
    "%(field)s must be a finite number, not %(value)r":
        "%(field)s : un nombre fini est attendu, pas %(value)r",
    "%(field)s %(value)r must be written as plain digits, like '12.50'":
        "%(field)s : %(value)r doit s'écrire en chiffres, comme « 12.50 »",
    "%(field)s %(value)r must be written without a comma: a point for decimals, like "
    "'1234.50'":
        "%(field)s : %(value)r doit s'écrire sans virgule : un point pour les décimales, "
        "comme « 1234.50 »",
    "%(field)s must not be negative: %(value)s":
        "%(field)s : %(value)s est négatif, ce qui n'est pas permis",
    "%(field)s must be greater than zero": "%(field)s : un montant supérieur à zéro est attendu",
    "%(field)s %(value)s is too large": "%(field)s : %(value)s est trop grand",
    "%(field)s %(value)s has more than %(places)d decimal places":
        "%(field)s : %(value)s a trop de décimales (maximum : %(places)d)",
    "unknown marker %(marker)r": "marqueur %(marker)r inconnu",
    "voiding a credit needs a reason": "invalider un crédit demande un motif",
    "credit %(id)s is already voided (%(reason)s)":
        "le crédit %(id)s est déjà invalidé (%(reason)s)",
    "idempotency key %(key)r was used for another order request":
        "la clé d'idempotence %(key)r a servi pour une autre demande de bon de commande",
    "payment of %(paid)s does not match order %(id)s (%(amount)s excluding tax)":
        "le paiement de %(paid)s ne correspond pas au bon de commande %(id)s (%(amount)s HT)",
    "payment in %(paid)s does not match order %(id)s (%(currency)s)":
        "un paiement en %(paid)s ne correspond pas au bon de commande %(id)s (%(currency)s)",
    "order %(id)s is cancelled": "le bon de commande %(id)s est annulé",
    "order %(id)s has lapsed unpaid": "le bon de commande %(id)s a expiré sans être payé",
    "order %(id)s is paid; only a pending order can be cancelled":
        "le bon de commande %(id)s est déjà payé ; seul un bon de commande en attente de "
        "paiement peut être annulé",
    "order %(id)s is expired; only a pending order can be cancelled":
        "le bon de commande %(id)s a expiré ; seul un bon de commande en attente de "
        "paiement peut être annulé",
    "this voucher is in %(currency)s but project %(project)s bills in %(found)s":
        "ce voucher est en %(currency)s, mais le projet %(project)s est facturé en "
        "%(found)s",
    "voucher %(code)s was redeemed in %(currency)s, but project %(project)s bills in "
    "%(found)s: it stays pending until support resolves it":
        "le voucher %(code)s a été utilisé en %(currency)s, mais le projet %(project)s est "
        "facturé en %(found)s : son activation reste en attente jusqu'à ce que le support "
        "la règle",
    "the input is not UTF-8 (line %(line)d)": "l'entrée n'est pas en UTF-8 (ligne %(line)d)",
    "the input is not UTF-8": "l'entrée n'est pas en UTF-8",
    "the input is not a JSON array": "l'entrée n'est pas un tableau JSON",
    "the input must be an invoice object, an array of them, or JSON lines":
        "l'entrée doit être un objet facture, un tableau de factures ou des lignes JSON",
    "%(where)s: key %(key)r appears twice in one object":
        "%(where)s : la clé %(key)r apparaît deux fois dans un même objet",
    "%(where)s is not valid JSON: %(error)s": "%(where)s n'est pas du JSON valide : %(error)s",
    "Bad request": "Requête invalide",
    "Unauthorized: no valid token": "Non authentifié : aucun jeton valide",
    "Conflict": "Conflit",
    "Request too large": "Requête trop volumineuse",
    "Too many requests": "Trop de requêtes",
    "Server error": "Erreur du serveur",
    "error": "erreur",
    "request %(request_id)s": "requête %(request_id)s",
    "retry after %(seconds)ss": "réessayez dans %(seconds)s s",
    "retry after %(date)s": "réessayez après %(date)s",
    "a void reason must be UTF-8 text without NUL characters":
        "un motif d'invalidation doit être du texte UTF-8 sans caractère NUL",
    "charge %(key)s: line id %(id)r appears twice":
        "charge %(key)s : l'identifiant de ligne %(id)r apparaît deux fois",
    "TLS with the voucher catalog at %(where)s failed: %(error)s; the catalog's certificate "
    "is not valid for the host of [voucher_catalog] endpoint":
        "la connexion TLS au catalogue des vouchers à l'adresse %(where)s a échoué : "
        "%(error)s ; le certificat du catalogue n'est pas valide pour l'hôte de "
        "[voucher_catalog] endpoint",
    "[voucher_catalog] auth_token has characters an HTTP header cannot carry":
        "[voucher_catalog] auth_token contient des caractères qu'un en-tête HTTP ne peut pas "
        "transporter",
    "cannot listen on %(address)s: %(reason)s":
        "impossible d'écouter sur %(address)s : %(reason)s",
    "cannot open the log file %(path)s: %(reason)s":
        "impossible d'ouvrir le fichier journal %(path)s : %(reason)s",
    "not an http(s) URL: %(template)r": "ce n'est pas une URL http(s) : %(template)r",
    "%(template)r has no {order_id}: the payment page could not tell which order is paid":
        "%(template)r ne contient pas {order_id} : la page de paiement ne saurait pas quelle "
        "commande est payée",
    "%(path)s is not UTF-8 text (byte %(position)d)":
        "%(path)s n'est pas du texte UTF-8 (octet %(position)d)",
    "a configuration file is not UTF-8 text":
        "un fichier de configuration n'est pas du texte UTF-8",
    "rated period %(start)s/%(end)s: metric type %(type)s has a price that is not a usable "
    "amount (not a number, infinite or far too large): not settled; fix its pricing rule":
        "période tarifée %(start)s/%(end)s : le type de métrique %(type)s a un prix qui n'est "
        "pas un montant utilisable (pas un nombre, infini ou bien trop grand) : non réglée ; "
        "corrigez sa règle de tarification",
    "invoice %(invoice)s of project %(project)s cannot be settled: its settlement key would be "
    "%(length)s characters long, the ledger holds %(limit)s":
        "la facture %(invoice)s du projet %(project)s ne peut pas être réglée : sa clé de "
        "règlement compterait %(length)s caractères, le registre en accepte %(limit)s",
    "project %(project)s has already activated this voucher":
        "le projet %(project)s a déjà activé ce voucher",
    "the request body ended before its Content-Length":
        "le corps de la requête s'est terminé avant sa Content-Length",
    "the input": "l'entrée",
    "the invoice": "la facture",
    "invoice #%(number)d": "la facture n° %(number)d",
    "line %(number)d": "la ligne %(number)d",
    "%(where)s is not valid JSON: a number has too many digits":
        "%(where)s n'est pas du JSON valide : un nombre a trop de chiffres",
    "%(where)s is not valid JSON: nested too deeply":
        "%(where)s n'est pas du JSON valide : imbrication trop profonde",
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
        "le fichier de vouchers %(path)r est illisible : %(error)s",
    "unknown voucher %(code)s": "voucher %(code)s inconnu",
    "voucher %(code)s is used up": "le voucher %(code)s est épuisé",
    "voucher file %(path)r does not exist": "le fichier de vouchers %(path)r n'existe pas",
    "voucher file %(path)r is not readable JSON: %(error)s":
        "le fichier de vouchers %(path)r n'est pas du JSON lisible : %(error)s",
    'voucher file %(path)r must hold {"vouchers": [...]}':
        'le fichier de vouchers %(path)r doit contenir {"vouchers": [...]}',
    "voucher #%(index)d of %(path)r is invalid: %(error)s at %(where)s":
        "le voucher n° %(index)d de %(path)r est invalide : %(error)s (%(where)s)",
    "voucher #%(index)d of %(path)r is invalid: %(error)s":
        "le voucher n° %(index)d de %(path)r est invalide : %(error)s",
    "voucher #%(index)d of %(path)r has an invalid code: codes are 4 to 64 letters, digits or "
    "dashes":
        "le voucher n° %(index)d de %(path)r a un code invalide : un code compte de 4 à 64 "
        "lettres, chiffres ou tirets",
    "voucher #%(index)d of %(path)r repeats the code of an earlier voucher":
        "le voucher n° %(index)d de %(path)r reprend le code d'un voucher précédent",
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
    "no settlement of invoice %(invoice)s of project %(project)s":
        "aucun règlement de la facture %(invoice)s du projet %(project)s",
    "line %(line)s: %(amount)s from credit %(credit)s (%(kind)s)":
        "ligne %(line)s : %(amount)s du crédit %(credit)s (%(kind)s)",
    "recorded without an explanation": "enregistré sans explication",
    "line %(line)s: %(amount)s from credit %(credit)s (%(kind)s), place %(place)d "
    "in the consumption order (valid until %(valid_until)s, created %(created)s)":
        "ligne %(line)s : %(amount)s du crédit %(credit)s (%(kind)s), "
        "rang %(place)d dans l'ordre de consommation (valable jusqu'au %(valid_until)s, créé "
        "le %(created)s)",
    "line %(line)s: %(amount)s from credit %(credit)s (%(kind)s), place %(place)d "
    "in the consumption order (no end date, created %(created)s)":
        "ligne %(line)s : %(amount)s du crédit %(credit)s (%(kind)s), "
        "rang %(place)d dans l'ordre de consommation (sans date de fin, créé le %(created)s)",
    "credit %(skipped)s comes first but does not cover this line's product":
        "le crédit %(skipped)s passe avant mais ne couvre pas le produit de cette ligne",
    "credit %(skipped)s comes first but paid %(products)s, which credit %(credit)s does not "
    "cover":
        "le crédit %(skipped)s passe avant mais a payé %(products)s, que le crédit %(credit)s "
        "ne couvre pas",
    "too many failed voucher attempts on this project: try again later":
        "trop de tentatives de voucher ont échoué sur ce projet : réessayez plus tard",
    "too many failed voucher attempts on this project: try again after %(when)s":
        "trop de tentatives de voucher ont échoué sur ce projet : réessayez après le "
        "%(when)s",
    # An order in a currency without purchase limits: the customer's words (the API's
    # detail), then the operator's hint, which the operator CLI joins to them.
    "cloud credit is not sold in %(currency)s": "le crédit cloud n'est pas vendu en %(currency)s",
    "to sell it, set [cloud_credit] purchase_min_amount and purchase_max_amount for "
    "%(currency)s, e.g. %(example)s":
        "pour le vendre, définissez [cloud_credit] purchase_min_amount et purchase_max_amount "
        "pour %(currency)s, par exemple %(example)s",
    "%(refusal)s; %(hint)s": "%(refusal)s ; %(hint)s",
    # A settlement explained (explained.py): the kinds of credit as the panel names them
    # (« Voucher », « Crédit acheté »), and the parts of the sentence joined.
    "voucher": "voucher",
    "purchased": "crédit acheté",
    "; ": " ; ",
    # Inputs of the service and the CLI.
    " (the [postgresql] extra installs psycopg 3: write postgresql+psycopg://)":
        " (l'extra [postgresql] installe psycopg 3 : écrivez postgresql+psycopg://)",
    "%(error)s (the default ledger: no configuration file names a [cloud_credit] connection)":
        "%(error)s (le registre par défaut : aucun fichier de configuration ne donne de "
        "connection dans [cloud_credit])",
    "%(field)s must be a Decimal, not %(name)s": "%(field)s doit être un Decimal, pas %(name)s",
    "%(key)s overlaps %(other)s, settled before: not settled, so that credit does not pay the "
    "same usage twice (a reprocessing window not aligned with the rated periods, or a shorter "
    "[collect] period: see the CloudKitty guide's scope state reset)":
        "%(key)s chevauche %(other)s, déjà réglé : non réglé, pour que le crédit ne paie pas "
        "deux fois la même consommation (une fenêtre de retraitement non alignée sur les "
        "périodes valorisées, ou une période [collect] raccourcie : voir la remise à zéro de "
        "l'état des scopes dans le guide CloudKitty)",
    "%(message)s (catalog request %(request_id)s)":
        "%(message)s (requête du catalogue %(request_id)s)",
    "%(option)s: %(code)s is given twice": "%(option)s : %(code)s est donné deux fois",
    "%(option)s: %(error)s": "%(option)s : %(error)s",
    "%(option)s: %(item)r is not CURRENCY:AMOUNT (e.g. EUR:5,JPY:500)":
        "%(option)s : %(item)r n'est pas de la forme DEVISE:MONTANT (par exemple EUR:5,JPY:500)",
    "%(path)s: unknown option %(option)r in [%(section)s]":
        "%(path)s : option %(option)r inconnue dans [%(section)s]",
    "%(path)s: unknown option %(option)r in [%(section)s] (did you mean %(guess)r?)":
        "%(path)s : option %(option)r inconnue dans [%(section)s] (vouliez-vous dire "
        "%(guess)r ?)",
    "%(path)s: unknown section [%(section)s] (did you mean [%(guess)s]?)":
        "%(path)s : section [%(section)s] inconnue (vouliez-vous dire [%(guess)s] ?)",
    "%(time)s is out of range in UTC": "%(time)s est hors des limites en UTC",
    "%(what)s at %(created)s: --at %(at)s is earlier":
        "%(what)s le %(created)s : --at %(at)s est antérieur",
    "%(where)s: %(error)s": "%(where)s : %(error)s",
    "%(where)s: %(problem)s": "%(where)s : %(problem)s",
    "%(where)s: %(reason)s": "%(where)s : %(reason)s",
    "Unable to establish connection to %(url)s: %(reason)s":
        "Impossible d'établir la connexion avec %(url)s : %(reason)s",
    "Request to %(url)s timed out": "La requête vers %(url)s n'a pas reçu de réponse à temps",
    "TLS error connecting to %(url)s: %(reason)s":
        "Erreur TLS lors de la connexion à %(url)s : %(reason)s",
    "TLS error connecting to %(url)s": "Erreur TLS lors de la connexion à %(url)s",
    "%(where)s: expected an invoice object": "%(where)s : un objet facture est attendu",
    "--at %(at)s is in the future (now is %(now)s, clock skew allowed %(skew)s s): a change "
    "is never dated after now":
        "--at %(at)s est dans le futur (il est %(now)s, décalage d'horloge toléré %(skew)s s) : "
        "une modification n'est jamais datée après maintenant",
    "--project goes with an invoice ID: a settlement key names its project":
        "--project va avec un identifiant de facture : une clé de règlement nomme déjà son projet",
    "--reason must not be empty": "--reason ne doit pas être vide",
    "--summary and --long do not go together: the summary has columns of its own":
        "--summary et --long ne vont pas ensemble : le résumé a ses propres colonnes",
    "Cloud credit (order %(order)s)": "Crédit cloud (bon de commande %(order)s)",
    "Voucher %(code)s": "Voucher %(code)s",
    "[cloud_credit] %(error)s": "[cloud_credit] %(error)s",
    "[cloud_credit] %(name)s has a limit for %(missing)s, %(other)s has none: every currency "
    "sold needs both (e.g. %(example)s; a single amount is for default_currency "
    "%(default_currency)s)":
        "[cloud_credit] %(name)s a une limite pour %(missing)s, %(other)s n'en a pas : chaque "
        "devise vendue a besoin des deux (par exemple %(example)s ; un montant seul vaut pour "
        "default_currency %(default_currency)s)",
    "[cloud_credit] connection %(url)s: write postgresql+psycopg:// instead of "
    "%(drivername)s://":
        "[cloud_credit] connection %(url)s : écrivez postgresql+psycopg:// au lieu de "
        "%(drivername)s://",
    "[cloud_credit] connection is empty: write the ledger's URL, or remove the line to use "
    "%(path)s in the working directory":
        "[cloud_credit] connection est vide : écrivez l'URL du registre, ou retirez la ligne "
        "pour utiliser %(path)s dans le répertoire courant",
    "[cloud_credit] purchase_min_amount is above purchase_max_amount for %(code)s "
    "(%(lowest)s > %(highest)s)":
        "[cloud_credit] purchase_min_amount dépasse purchase_max_amount pour %(code)s "
        "(%(lowest)s > %(highest)s)",
    "[voucher_catalog] %(name)s %(value)r is not a readable file":
        "[voucher_catalog] %(name)s %(value)r n'est pas un fichier lisible",
    "[voucher_catalog] ca_file %(ca_file)r is not a readable file":
        "[voucher_catalog] ca_file %(ca_file)r n'est pas un fichier lisible",
    "[voucher_catalog] driver %(name)r is not installed":
        "[voucher_catalog] le pilote %(name)r n'est pas installé",
    "[voucher_catalog] endpoint has an invalid port: %(endpoint)r":
        "[voucher_catalog] endpoint a un port invalide : %(endpoint)r",
    "[voucher_catalog] endpoint is required by the http driver":
        "[voucher_catalog] endpoint est requis par le pilote http",
    "[voucher_catalog] endpoint must be an http(s) URL, not %(endpoint)r":
        "[voucher_catalog] endpoint doit être une URL http(s), pas %(endpoint)r",
    "[voucher_catalog] endpoint must not carry credentials: use auth_token":
        "[voucher_catalog] endpoint ne doit pas contenir d'identifiants : utilisez auth_token",
    "[voucher_catalog] endpoint must not have a query or fragment":
        "[voucher_catalog] endpoint ne doit avoir ni requête ni fragment",
    "[voucher_catalog] key_file needs cert_file": "[voucher_catalog] key_file exige cert_file",
    "a credit purchase is between %(lowest)s and %(highest)s excluding tax":
        "un achat de crédit cloud est compris entre %(lowest)s et %(highest)s HT",
    "a voucher amount must be positive": "le montant d'un voucher doit être positif",
    "an idempotency key is 1 to 255 printable ASCII characters":
        "une clé d'idempotence compte de 1 à 255 caractères ASCII imprimables",
    "batch_size must be at least 1, not %(value)r":
        "batch_size doit valoir au moins 1, pas %(value)r",
    "charge %(key)s line %(line)s amount": "montant de la ligne %(line)s de la charge %(key)s",
    "charge %(key)s: invalid %(what)s %(text)r": "charge %(key)s : %(what)s %(text)r invalide",
    "charge %(key)s: settlement time must be an aware datetime, not %(at)r":
        "charge %(key)s : l'heure du règlement doit porter son fuseau horaire, pas %(at)r",
    "charge %(key)s: the total is too large": "charge %(key)s : le total est trop grand",
    "credit %(id)s was granted": "le crédit %(id)s a été accordé",
    "invalid [cloud_credit] connection URL: %(url)r":
        "URL de connexion [cloud_credit] invalide : %(url)r",
    "invalid amount %(text)r: use a decimal number, e.g. 50.00":
        "montant %(text)r invalide : écrivez un nombre décimal avec un point, par exemple "
        "50.00",
    "invalid credit id %(value)r: a positive integer":
        "identifiant de crédit %(value)r invalide : un entier positif est attendu",
    "invalid idempotency key": "clé d'idempotence invalide",
    "invalid invoice id %(invoice_id)r": "identifiant de facture %(invoice_id)r invalide",
    "invalid invoice id %(value)r: 1-255 letters, digits and ._:@/-":
        "identifiant de facture %(value)r invalide : 1 à 255 lettres, chiffres et ._:@/-",
    "invalid limit %(text)r: a whole number from 1":
        "limite %(text)r invalide : un nombre entier à partir de 1",
    "invalid project id %(project_id)r": "identifiant de projet %(project_id)r invalide",
    "invalid project id %(value)r: 1-255 letters, digits and ._:@/-":
        "identifiant de projet %(value)r invalide : 1 à 255 lettres, chiffres et ._:@/-",
    "invalid settlement key %(key)r": "clé de règlement %(key)r invalide",
    "invalid settlement key %(value)r: 1-600 characters":
        "clé de règlement %(value)r invalide : 1 à 600 caractères",
    "invalid time %(text)r: use ISO 8601, e.g. 2026-11-27T12:00:00Z":
        "heure %(text)r invalide : utilisez ISO 8601, par exemple 2026-11-27T12:00:00Z",
    "invalid time %(time)s: before %(earliest)s": "heure %(time)s invalide : avant %(earliest)s",
    "invalid time %(value)r: expected a datetime":
        "heure %(value)r invalide : un datetime est attendu",
    "invalid time: %(error)s": "heure invalide : %(error)s",
    "limit must be from 1 to 1000, not %(value)r":
        "limit doit être compris entre 1 et 1000, pas %(value)r",
    "line id": "identifiant de ligne",
    "line id %(id)r appears twice": "l'identifiant de ligne %(id)r apparaît deux fois",
    "more than %(pages)s pages: use --limit and --marker":
        "plus de %(pages)s pages : utilisez --limit et --marker",
    "must be 1-255 characters: letters, digits and ._:@/-":
        "doit compter de 1 à 255 caractères : lettres, chiffres et ._:@/-",
    "no answer": "aucune réponse",
    "no credit %(credit_id)s": "crédit %(credit_id)s introuvable",
    "no driver for %(drivername)r: install ovh-credit-plugin[postgresql] or [mysql] "
    "(%(error)s)%(hint)s":
        "aucun pilote pour %(drivername)r : installez ovh-credit-plugin[postgresql] ou [mysql] "
        "(%(error)s)%(hint)s",
    "no invoice in %(name)s: nothing to settle": "aucune facture dans %(name)s : rien à régler",
    "no ledger database: set [cloud_credit] connection (or CloudKitty's [database] "
    "connection) in cloudkitty.conf":
        "aucune base pour le registre : définissez [cloud_credit] connection (ou [database] "
        "connection de CloudKitty) dans cloudkitty.conf",
    "no order %(after)r": "aucun bon de commande %(after)r",
    "no order %(order_id)r": "aucun bon de commande %(order_id)r",
    "no voucher catalog is configured": "aucun catalogue de vouchers n'est configuré",
    "not a valid template: %(error)s": "modèle invalide : %(error)s",
    "on_change must be 'conflict' or 'replace', not %(on_change)r":
        "on_change vaut « conflict » ou « replace », pas %(on_change)r",
    "order %(id)s was created": "le bon de commande %(id)s a été créé",
    "product": "produit",
    "project %(project_id)s bills in %(found)s, not %(code)s: credit is never converted (a "
    "project's currency is released once it holds no credit and no pending order)":
        "le projet %(project_id)s est facturé en %(found)s, pas en %(code)s : le crédit n'est "
        "jamais converti (la devise d'un projet est libérée quand il n'a plus de crédit ni de "
        "bon de commande en attente)",
    "standard input": "l'entrée standard",
    "status must be one of %(statuses)s": "status doit valoir l'une de ces valeurs : %(statuses)s",
    "the catalog answered for another code than %(masked)s":
        "le catalogue a répondu pour un autre code que %(masked)s",
    "the forecast window is a positive number of days, not %(window_days)r":
        "la fenêtre de prévision est un nombre de jours positif, pas %(window_days)r",
    "the ledger database %(url)s has no tables yet: run 'ovh-credit db upgrade'":
        "la base du registre %(url)s n'a pas encore de tables : lancez « ovh-credit db upgrade »",
    "the ledger database %(url)s: %(cause)s": "la base du registre %(url)s : %(cause)s",
    "the ledger database %(url)s holds ledger tables (%(tables)s) but no schema revision in "
    "cloud_credit_alembic_version: a first 'db upgrade' stopped half-way (MariaDB, MySQL), "
    "or the revision was lost. If those tables are empty, drop them and run 'ovh-credit db "
    "upgrade'; otherwise restore the ledger from a backup":
        "la base du registre %(url)s contient des tables du registre (%(tables)s) mais aucune "
        "révision de schéma dans cloud_credit_alembic_version : un premier « db upgrade » "
        "arrêté en cours de route (MariaDB, MySQL), ou la révision a été perdue. Si ces "
        "tables sont vides, supprimez-les puis lancez « ovh-credit db upgrade » ; sinon "
        "restaurez le registre depuis une sauvegarde",
    "another 'db upgrade' of the ledger database %(url)s has held the upgrade lock for longer "
    "than %(seconds)s s: run 'ovh-credit db upgrade' again once it is done":
        "un autre « db upgrade » de la base du registre %(url)s détient le verrou de mise à "
        "jour depuis plus de %(seconds)s s : relancez « ovh-credit db upgrade » une fois "
        "qu'il est terminé",
    "the ledger database %(url)s stayed locked by another process (another 'db upgrade', or "
    "a writer) for longer than [cloud_credit] sqlite_busy_timeout: run 'ovh-credit db "
    "upgrade' again once it is done":
        "la base du registre %(url)s est restée verrouillée par un autre processus (un autre "
        "« db upgrade », ou une écriture) plus longtemps que [cloud_credit] "
        "sqlite_busy_timeout : relancez « ovh-credit db upgrade » une fois qu'il a terminé",
    "the ledger schema of %(url)s is at revision %(found)s, this code needs %(head)s: run "
    "'ovh-credit db upgrade'":
        "le schéma du registre %(url)s est à la révision %(found)s, ce code attend %(head)s : "
        "lancez « ovh-credit db upgrade »",
    "the ledger schema of %(url)s changed while this process ran: it is at revision "
    "%(found)s, this process runs %(head)s; restart it (with a release that knows "
    "%(found)s)":
        "le schéma du registre %(url)s a changé pendant que ce processus tournait : il est à "
        "la révision %(found)s, ce processus tourne en %(head)s ; redémarrez-le (avec une "
        "version qui connaît %(found)s)",
    "the lines add up to more than the largest amount":
        "la somme des lignes dépasse le plus grand montant possible",
    "the server answered HTTP %(status_code)s with a body that is not JSON (is "
    "%(setting)s %(mode)r right for this endpoint?)":
        "le serveur a répondu HTTP %(status_code)s avec un corps qui n'est pas du JSON "
        "(%(setting)s %(mode)r convient-il à ce point d'accès ?)",
    "the voucher catalog answered about another code than %(code)s":
        "le catalogue des vouchers a répondu à propos d'un autre code que %(code)s",
    "the voucher catalog's answer is larger than %(limit)s bytes":
        "la réponse du catalogue des vouchers dépasse %(limit)s octets",
    "unexpected answer from the server: %(answer)s": "réponse inattendue du serveur : %(answer)s",
    "unexpected answer from the server: no %(key)r list":
        "réponse inattendue du serveur : pas de liste %(key)r",
    "unknown cloud credit API %(mode)r: choose from %(modes)s":
        "API de crédit cloud %(mode)r inconnue : choisissez parmi %(modes)s",
    "unknown column %(unknown)r for -c: choose from %(fields)s":
        "colonne %(unknown)r inconnue pour -c : choisissez parmi %(fields)s",
    "unknown field {%(name)s}: use %(known)s": "champ {%(name)s} inconnu : utilisez %(known)s",
    "valid_until must be later than valid_from": "valid_until doit être postérieur à valid_from",
    "voucher %(code)s has expired": "le voucher %(code)s a expiré",
    "voucher %(code)s is not valid before %(time)s":
        "le voucher %(code)s n'est pas valable avant le %(time)s",
    "voucher %(code)s is revoked": "le voucher %(code)s est révoqué",
    "warning days must be positive integers, not %(days)r":
        "les jours d'avertissement sont des entiers positifs, pas %(days)r",
    # The voucher catalog's errors (ovh_credit_plugin.catalog): the CLI prints them.
    "the catalog redeemed another code than %(masked)s":
        "le catalogue a utilisé un autre code que %(masked)s",
    "the catalog redeemed %(masked)s for another project than %(project_id)s":
        "le catalogue a utilisé %(masked)s pour un autre projet que %(project_id)s",
    "the catalog redeemed %(masked)s for nothing":
        "le catalogue a utilisé %(masked)s pour un montant nul",
    "the catalog redeemed %(masked)s in %(currency)s, but the voucher is in "
    "%(voucher_currency)s":
        "le catalogue a utilisé %(masked)s en %(currency)s, mais le voucher est en "
        "%(voucher_currency)s",
    "voucher %(code)s is revoked or expired": "le voucher %(code)s est révoqué ou expiré",
    "voucher %(code)s is revoked or expired: %(detail)s":
        "le voucher %(code)s est révoqué ou expiré : %(detail)s",
    "cannot connect (%(reason)s)": "connexion impossible (%(reason)s)",
    "cannot connect (connection failed)": "connexion impossible (échec de la connexion)",
    "connection timed out": "délai de connexion dépassé",
    "read timed out": "délai de lecture dépassé",
    "voucher catalog at %(where)s unavailable: %(error)s":
        "le catalogue des vouchers à l'adresse %(where)s est indisponible : %(error)s",
    "voucher catalog at %(where)s unavailable: no answer":
        "le catalogue des vouchers à l'adresse %(where)s est indisponible : aucune réponse",
    "voucher catalog at %(where)s unavailable: no complete answer within the %(seconds)s s "
    "deadline":
        "le catalogue des vouchers à l'adresse %(where)s est indisponible : aucune réponse "
        "complète dans le délai de %(seconds)s s",
    "voucher catalog at %(where)s unavailable: no complete answer within the %(seconds)s s "
    "deadline (last error: %(error)s)":
        "le catalogue des vouchers à l'adresse %(where)s est indisponible : aucune réponse "
        "complète dans le délai de %(seconds)s s (dernière erreur : %(error)s)",
    "voucher catalog at %(where)s unavailable: HTTP %(status)d after %(attempts)s attempt(s)":
        "le catalogue des vouchers à l'adresse %(where)s est indisponible : HTTP "
        "%(status)d après %(attempts)s tentative(s)",
    "voucher catalog at %(where)s unavailable: HTTP %(status)d after %(attempts)s "
    "attempt(s): %(detail)s":
        "le catalogue des vouchers à l'adresse %(where)s est indisponible : HTTP "
        "%(status)d après %(attempts)s tentative(s) : %(detail)s",
    "TLS with the voucher catalog at %(where)s failed: %(error)s; set [voucher_catalog] "
    "ca_file to the CA that signed the catalog's certificate":
        "la connexion TLS au catalogue des vouchers à l'adresse %(where)s a échoué : "
        "%(error)s ; définissez [voucher_catalog] ca_file avec l'autorité de certification qui "
        "a signé le certificat du catalogue",
    "TLS with the voucher catalog at %(where)s failed: %(error)s; check [voucher_catalog] "
    "TLS options (ca_file, cert_file, key_file)":
        "la connexion TLS au catalogue des vouchers à l'adresse %(where)s a échoué : "
        "%(error)s ; vérifiez les options TLS de [voucher_catalog] (ca_file, cert_file, "
        "key_file)",
    "the voucher catalog at %(where)s refused our credentials (HTTP %(status)d): check "
    "[voucher_catalog] auth_token":
        "le catalogue des vouchers à l'adresse %(where)s a refusé nos identifiants (HTTP "
        "%(status)d) : vérifiez [voucher_catalog] auth_token",
    "the voucher catalog at %(where)s refused our credentials (HTTP %(status)d: %(detail)s): "
    "check [voucher_catalog] auth_token":
        "le catalogue des vouchers à l'adresse %(where)s a refusé nos identifiants (HTTP "
        "%(status)d : %(detail)s) : vérifiez [voucher_catalog] auth_token",
    "the voucher catalog at %(where)s is throttling us (HTTP 429 after %(attempts)s "
    "attempt(s))":
        "le catalogue des vouchers à l'adresse %(where)s limite nos requêtes (HTTP 429 "
        "après %(attempts)s tentative(s))",
    "the voucher catalog at %(where)s is throttling us (HTTP 429 after %(attempts)s "
    "attempt(s), it asks to wait %(wait)s s)":
        "le catalogue des vouchers à l'adresse %(where)s limite nos requêtes (HTTP 429 "
        "après %(attempts)s tentative(s), il demande d'attendre %(wait)s s)",
    "the voucher catalog at %(where)s is throttling us (HTTP 429 after %(attempts)s "
    "attempt(s), it asks to wait until %(date)s)":
        "le catalogue des vouchers à l'adresse %(where)s limite nos requêtes (HTTP 429 "
        "après %(attempts)s tentative(s), il demande d'attendre jusqu'à %(date)s)",
    "unexpected HTTP %(status)d from the voucher catalog at %(where)s":
        "réponse HTTP %(status)d inattendue du catalogue des vouchers à l'adresse "
        "%(where)s",
    "unexpected HTTP %(status)d from the voucher catalog at %(where)s: %(detail)s":
        "réponse HTTP %(status)d inattendue du catalogue des vouchers à l'adresse "
        "%(where)s : %(detail)s",
    "the voucher catalog's voucher for %(code)s is not a JSON object":
        "le voucher %(code)s envoyé par le catalogue des vouchers n'est pas un objet "
        "JSON",
    "the voucher catalog's redemption for %(code)s is not a JSON object":
        "l'utilisation de %(code)s envoyée par le catalogue des vouchers n'est pas un "
        "objet JSON",
    "the voucher catalog's answer for %(code)s is not a JSON object":
        "la réponse du catalogue des vouchers pour %(code)s n'est pas un objet JSON",
    "the voucher catalog's voucher for %(code)s is invalid: %(problem)s":
        "le voucher %(code)s envoyé par le catalogue des vouchers est invalide : "
        "%(problem)s",
    "the voucher catalog's redemption for %(code)s is invalid: %(problem)s":
        "l'utilisation de %(code)s envoyée par le catalogue des vouchers est invalide : "
        "%(problem)s",
    "the voucher catalog's answer for %(code)s is invalid: %(problem)s":
        "la réponse du catalogue des vouchers pour %(code)s est invalide : %(problem)s",
    # pydantic's problems, in our words (models.first_error).
    "this field is required": "ce champ est obligatoire",
    "unknown field": "champ inconnu",
    "a string is expected": "une chaîne de caractères est attendue",
    "an integer is expected": "un nombre entier est attendu",
    "true or false is expected": "true ou false est attendu",
    "a list is expected": "une liste est attendue",
    "an object is expected": "un objet est attendu",
    "a decimal number is expected": "un nombre décimal est attendu",
    "a time is expected (ISO 8601)": "une heure est attendue (ISO 8601)",
    "a time with its time zone is expected": "une heure avec son fuseau horaire est attendue",
    "at least %(min_length)s characters are expected":
        "trop court (nombre minimal de caractères : %(min_length)s)",
    "at most %(max_length)s characters are allowed":
        "trop long (nombre maximal de caractères : %(max_length)s)",
    "at least %(min_length)s items are expected":
        "trop peu d'éléments (nombre minimal : %(min_length)s)",
    "at most %(max_length)s items are allowed":
        "trop d'éléments (nombre maximal : %(max_length)s)",
    "one of %(expected)s is expected": "l'une de ces valeurs est attendue : %(expected)s",
    "a number greater than %(gt)s is expected": "un nombre supérieur à %(gt)s est attendu",
    "a number of at least %(ge)s is expected": "un nombre d'au moins %(ge)s est attendu",
    "a number less than %(lt)s is expected": "un nombre inférieur à %(lt)s est attendu",
    "a number of at most %(le)s is expected": "un nombre d'au plus %(le)s est attendu",
    "malformed JSON": "JSON mal formé",
    # An API error read by the client (osc/client.py), joined in the answer's language.
    "%(title)s: %(detail)s": "%(title)s : %(detail)s",
    # openstack rating credit ...: the commands' descriptions and help (osc/).
    "List a project's credits (vouchers and purchased credit) in consumption order.":
        "Lister les crédits d'un projet (vouchers et crédit acheté) dans l'ordre de "
        "consommation.",
    "Show one credit with its ledger entries.":
        "Afficher un crédit et ses écritures dans le registre.",
    "Void a credit (fraud, charge-back): its balance can no longer be used. Admin only.":
        "Invalider un crédit (fraude, rétrofacturation) : son solde ne peut plus être utilisé. "
        "Administrateurs uniquement.",
    "When the project's credit runs out at its burn rate, and how much expires unused.\n\n"
    "The burn rate is the credit the project used per day over the server's window (30 days "
    "by default); credits are spent at that rate in the order they pay, and what a credit "
    "still holds at its end is at risk.":
        "Quand le crédit du projet sera épuisé au rythme de sa consommation, et combien "
        "expirera sans être utilisé.\n\n"
        "Le rythme de consommation est le crédit que le projet a utilisé par jour sur la "
        "période du serveur (30 jours par défaut) ; les crédits sont dépensés à ce rythme dans "
        "l'ordre où ils paient, et ce qu'il reste sur un crédit à sa fin de validité risque "
        "d'être perdu.",
    "Activate a voucher code: the project gets its credit (again: the same credit).":
        "Activer un code de voucher : le projet reçoit son crédit (une seconde fois : le même "
        "crédit).",
    "Show what a voucher code would grant, without activating it.":
        "Afficher ce qu'un code de voucher accorderait, sans l'activer.",
    "Buy cloud credit: a pending order to pay at its payment_url (no credit until paid).":
        "Acheter du crédit cloud : un bon de commande en attente, à payer à son payment_url "
        "(aucun crédit avant le paiement).",
    "List a project's purchase orders.": "Lister les bons de commande d'un projet.",
    "Show one purchase order.": "Afficher un bon de commande.",
    "Cancel a pending purchase order.": "Annuler un bon de commande en attente.",
    "Confirm an order's payment: its credit is created once (admin or service role).":
        "Confirmer le paiement d'un bon de commande : son crédit est créé une seule fois (rôle "
        "admin ou service).",
    "Show how an invoice was settled: which credit paid how much of each line, and why.":
        "Afficher le règlement d'une facture : quel crédit a payé combien de chaque ligne, et "
        "pourquoi.",
    "Act on this project (ID) instead of the token's: admins only (sent as ?project_id=).":
        "Agir sur ce projet (identifiant) plutôt que sur celui du jeton : administrateurs "
        "uniquement (envoyé dans le paramètre de requête project_id).",
    "Only those in this status": "Uniquement ceux qui ont ce statut",
    "Every field": "Tous les champs",
    "At most this many (default: all, page by page)":
        "Au plus ce nombre (par défaut : tous, page par page)",
    "Start after this ID (the previous page's last)":
        "Commencer après cet identifiant (le dernier de la page précédente)",
    "Credit ID": "Identifiant du crédit",
    "Why (recorded in the ledger; the same reason again is a replay, not a second void)":
        "Motif (enregistré dans le registre ; redonner le même motif rejoue l'invalidation "
        "au lieu d'en faire une seconde)",
    "The voucher code to activate": "Le code du voucher à activer",
    "The voucher code to check": "Le code du voucher à vérifier",
    "Amount excluding tax, e.g. 50.00": "Montant HT, par exemple 50.00",
    "The project's currency (default: the project's, or the server's default for a "
    "project's first order)":
        "La devise du projet (par défaut : celle du projet, ou celle du serveur pour le "
        "premier bon de commande d'un projet)",
    "Run again with the same key and amount after a lost answer: the same order, not a "
    "second one":
        "Relancer avec la même clé et le même montant après une réponse perdue : le même bon "
        "de commande, pas un second",
    "Order ID": "Identifiant du bon de commande",
    "The amount paid (refused unless it is the order's)":
        "Le montant payé (refusé si ce n'est pas celui du bon de commande)",
    "The currency paid (refused unless it is the order's)":
        "La devise du paiement (refusée si ce n'est pas celle du bon de commande)",
    "The invoice's ID (with --key: a settlement key)":
        "L'identifiant de la facture (avec --key : une clé de règlement)",
    "Read the argument as a settlement key, as a credit's ledger entries show it (a "
    "CloudKitty period's, say)":
        "Lire l'argument comme une clé de règlement, telle que les écritures d'un crédit dans "
        "le registre la montrent (celle d'une période de CloudKitty, par exemple)",
    "Which server answers 'openstack rating credit' commands at the rating endpoint: "
    "'cloudkitty' (default; CloudKitty's API with the cloud_credit module, path "
    "%(cloudkitty)s) or 'standalone' (ovh-credit-api, path %(standalone)s). Env: "
    "OS_CLOUD_CREDIT_API; clouds.yaml: %(option)s.":
        "Le serveur qui répond aux commandes « openstack rating credit » au point d'accès "
        "rating : « cloudkitty » (par défaut ; l'API de CloudKitty avec le module "
        "cloud_credit, chemin %(cloudkitty)s) ou « standalone » (ovh-credit-api, chemin "
        "%(standalone)s). Variable d'environnement : OS_CLOUD_CREDIT_API ; clouds.yaml : "
        "%(option)s.",
    "The API's root URL, e.g. http://127.0.0.1:8890":
        "L'URL racine de l'API, par exemple http://127.0.0.1:8890",
    "The project to act as (X-Project-Id)": "Le projet au nom duquel agir (X-Project-Id)",
    "The user to act as (X-User-Id)": "L'utilisateur au nom duquel agir (X-User-Id)",
    "Comma-separated roles (X-Roles), e.g. admin or service":
        "Rôles séparés par des virgules (X-Roles), par exemple admin ou service",
    "invalid number of seconds %(text)r: use a positive number, at most %(most)s (a day)":
        "nombre de secondes %(text)r invalide : indiquez un nombre positif, au plus %(most)s "
        "(un jour)",
    "the ledger database %(url)s stayed locked by another process (another 'db upgrade', or "
    "a writer) for longer than %(seconds)s s (--lock-timeout): run 'ovh-credit db upgrade' "
    "again once it is done":
        "la base du registre %(url)s est restée verrouillée par un autre processus (un autre "
        "« db upgrade », ou une écriture) plus de %(seconds)s s (--lock-timeout) : relancez "
        "« ovh-credit db upgrade » une fois qu'il a terminé",
    # Messages with a count (ngettext): the French forms [0] for 0 and 1, [1] for exact
    # millions, [2] for the rest (the catalog's Plural-Forms).
    "%(unsent)s expiry warning could not be sent (%(failure)s); it is not recorded as sent, "
    "and the run stopped there: the next run sends it and the rest": (
        "%(unsent)s avertissement d'expiration n'a pas pu être envoyé (%(failure)s) ; il "
        "n'est pas enregistré comme envoyé, et l'exécution s'est arrêtée là : la prochaine "
        "l'envoie, avec le reste",
        *["%(unsent)s avertissements d'expiration n'ont pas pu être envoyés (%(failure)s) ; "
          "ils ne sont pas enregistrés comme envoyés, et l'exécution s'est arrêtée là : la "
          "prochaine les envoie, avec le reste"] * 2),
    "%(total)s invoice refused, none settled (its error is in the output)": (
        "%(total)s facture refusée, aucune réglée (son erreur est dans la sortie)",
        *["les %(total)s factures sont refusées, aucune n'est réglée (l'erreur de chaque "
          "refus est dans la sortie)"] * 2),
    "%(refused)s of %(total)s invoices refused, the rest settled (its error is in the "
    "output)": (
        "%(refused)s facture sur %(total)s refusée, les autres réglées (son erreur est dans "
        "la sortie)",
        *["%(refused)s factures sur %(total)s refusées, les autres réglées (l'erreur de "
          "chaque refus est dans la sortie)"] * 2),
    "project %(project)s is not blocked (%(counted)s failed or running voucher attempt "
    "counted, limit %(limit)s): nothing done": (
        "le projet %(project)s n'est pas bloqué (%(counted)s tentative de voucher échouée ou "
        "en cours comptée, limite %(limit)s) : rien n'est fait",
        *["le projet %(project)s n'est pas bloqué (%(counted)s tentatives de voucher "
          "échouées ou en cours comptées, limite %(limit)s) : rien n'est fait"] * 2),
    "invalid time %(time)s: at or after %(latest)s":
        "heure %(time)s invalide : égale ou postérieure à %(latest)s",
    "invalid batch size %(text)r: use a whole number, at least 1":
        "taille de lot %(text)r invalide : indiquez un nombre entier, au moins 1",
    "unblocking a project needs a reason": "débloquer un projet demande un motif",
    "the notification transport failed": "le transport des notifications a échoué",
    "the notification transport failed: %(error)s":
        "le transport des notifications a échoué : %(error)s",
    "the ledger schema of %(url)s is at revision %(found)s, newer than this code knows (its "
    "newest is %(head)s): upgrade ovh-credit-plugin":
        "le schéma du registre de %(url)s est à la révision %(found)s, plus récente que ce "
        "que ce code connaît (sa plus récente est %(head)s) : mettez à jour ovh-credit-plugin",
    "the activation is left pending (the catalog may have redeemed %(code)s): running "
    "'ovh-credit voucher activate %(project)s CODE' again with the same code finishes it "
    "('ovh-credit voucher pending' lists it)":
        "l'activation reste en attente (le catalogue a peut-être utilisé %(code)s) : "
        "relancer « ovh-credit voucher activate %(project)s CODE » avec le même code la "
        "termine (« ovh-credit voucher pending » la liste)",
}

FR = french_table(FR)
