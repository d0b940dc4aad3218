"""French texts of the dashboard panel (tools/update_dashboard_catalog.py writes django.po).

The vocabulary of the customer guide (docs/translations.md): crédit cloud, voucher (the
guide's own word: « Activer un voucher », the list « Crédits & Vouchers »), bon de commande
(purchase order), HT (amounts before tax), and the guide's buttons: « Acheter du crédit
cloud », « Générer un bon de commande », « Activer un voucher », « Valider ». A voided
credit is « invalidé » (« Annuler » is Horizon's Cancel button, next to the form's own);
a cancelled order « annulé ». Written with ordinary spaces: fr_typography puts the
no-break spaces French wants before « : ; ? ! » and inside guillemets.
"""

from fr_typography import french_table

FR = {
    "Credits & Vouchers": "Crédits & Vouchers",
    "Rating": "Tarification",
    "Voucher": "Voucher",
    "Purchased credit": "Crédit acheté",
    "Active": "Actif",
    "Used up": "Épuisé",
    "Expired": "Expiré",
    "Voided": "Invalidé",
    "Pending payment": "En attente de paiement",
    "Paid": "Payé",
    "Cancelled": "Annulé",
    "Amount": "Montant",
    "The amount of credit to buy, before tax. You pay it on the payment page; the credit "
    "appears once paid.":
        "Le montant (HT) du crédit cloud à acheter. Vous le payez sur la page de paiement ; "
        "le crédit apparaît une fois payé.",
    "Write an amount as a number, for example 50.00.":
        "Écrivez le montant en chiffres, par exemple 50,00.",
    "The amount must be more than zero.": "Le montant doit être supérieur à zéro.",
    "%(currency)s amounts have at most %(places)d decimals.":
        "Nombre maximal de décimales d'un montant en %(currency)s : %(places)d.",
    "This voucher code is unknown. Check the code and try again.":
        "Ce code de voucher est inconnu. Vérifiez le code et réessayez.",
    "This voucher has already been used.": "Ce voucher a déjà été utilisé.",
    "This voucher cannot be used: it has expired, was withdrawn or is not valid yet.":
        "Ce voucher n'est pas utilisable : il a expiré, a été retiré ou n'est pas encore "
        "valable.",
    "This voucher is in another currency than your project's credit.":
        "Ce voucher est dans une autre devise que le crédit de votre projet.",
    "Vouchers cannot be checked right now: try again in a few minutes.":
        "Les vouchers ne peuvent pas être vérifiés pour le moment : réessayez dans "
        "quelques minutes.",
    "Too many wrong voucher codes were tried on this project: you can try again after "
    "%(time)s":
        "Trop de codes de voucher erronés ont été essayés sur ce projet : vous pourrez "
        "réessayer après le %(time)s",
    "Too many wrong voucher codes were tried on this project. Try again later.":
        "Trop de codes de voucher erronés ont été essayés sur ce projet. Réessayez "
        "plus tard.",
    "Voucher code": "Code du voucher",
    "The code printed on your voucher, for example WELCOME-2026.":
        "Le code inscrit sur votre voucher, par exemple WELCOME-2026.",
    "Voucher activated: %(amount)s of credit.": "Voucher activé : %(amount)s de crédit.",
    "Reason": "Motif",
    "Why the credit is voided (kept in its ledger), for example a charge-back.":
        "Pourquoi le crédit est invalidé (conservé dans son historique), par exemple une "
        "rétrofacturation.",
    "The credit is voided.": "Le crédit est invalidé.",
    "Add credit": "Acheter du crédit cloud",
    "Add a voucher": "Activer un voucher",
    "Void": "Invalider",
    "from %(start)s, no end": "à partir du %(start)s, sans fin",
    "%(start)s to %(end)s": "du %(start)s au %(end)s",
    "All products": "Tous les produits",
    "Kind": "Type",
    "Description": "Description",
    "Total": "Total",
    "Used": "Utilisé",
    "Available": "Disponible",
    "Validity": "Validité",
    "Products": "Produits",
    "Status": "Statut",
    "Credits, in the order they are used": "Crédits, dans l'ordre où ils sont utilisés",
    "Expired and voided credits": "Crédits expirés et invalidés",
    "Pay this order": "Payer ce bon de commande",
    "Order": "Bon de commande",
    "Created": "Créé le",
    "Payment": "Paiement",
    "Purchase orders": "Bons de commande",
    "Unable to list the credits: %s": "Impossible de lister les crédits : %s",
    "Unable to list the purchase orders: %s": "Impossible de lister les bons de commande : %s",
    "%(amount)s of your credit will expire unused on %(date)s: at your current usage it "
    "will not be spent before then.":
        "Votre crédit perdra %(amount)s à son expiration le %(date)s : à votre "
        "consommation actuelle, ce montant ne sera pas dépensé d'ici là.",
    "Create the purchase order": "Générer un bon de commande",
    "Activate": "Valider",
    "Void a credit": "Invalider un crédit",
    "Purchase order": "Bon de commande",
    "Unable to show the order: %s": "Impossible d'afficher le bon de commande : %s",
    "Buying credit makes a purchase order. Pay it on the payment page: the credit appears "
    "in your list once the payment is confirmed.":
        "Acheter du crédit cloud génère un bon de commande. Payez-le sur la page de "
        "paiement : le crédit apparaît dans votre liste une fois le paiement confirmé.",
    "Purchased credit is valid 1 month. Vouchers are used before purchased credit.":
        "Le crédit acheté est valable 1 mois. Les vouchers sont utilisés avant le "
        "crédit acheté.",
    "Purchased credit is valid %(months)s months. Vouchers are used before purchased credit.":
        "Le crédit acheté est valable %(months)s mois. Les vouchers sont utilisés avant le "
        "crédit acheté.",
    "Vouchers are used before purchased credit.":
        "Les vouchers sont utilisés avant le crédit acheté.",
    "A voucher adds its credit to this project at once. Vouchers are used before "
    "purchased credit.":
        "Un voucher ajoute son crédit à ce projet immédiatement. Les vouchers sont "
        "utilisés avant le crédit acheté.",
    "A voided credit pays nothing more. What it already paid stays paid.":
        "Un crédit invalidé ne paie plus rien. Ce qu'il a déjà payé reste payé.",
    "Project ID": "ID du projet",
    "Show this project": "Afficher ce projet",
    "This order is paid: its credit is in your list.":
        "Ce bon de commande est payé : son crédit est dans votre liste.",
    "Pay before": "À payer avant le",
    "Back to Credits & Vouchers": "Retour à la liste Crédits & Vouchers",
    "Your purchase order is waiting for payment. The credit appears once paid.":
        "Votre bon de commande attend son paiement. Le crédit apparaît une fois payé.",
    "no %(service)s endpoint in the catalog: %(error)s":
        "aucun point d'accès %(service)s dans le catalogue : %(error)s",
    "The credit service did not answer in time. Try again in a few minutes.":
        "Le service de crédit cloud n'a pas répondu à temps. Réessayez dans quelques minutes.",
    "The credit service cannot be reached. Try again in a few minutes.":
        "Le service de crédit cloud est injoignable. Réessayez dans quelques minutes.",
    "The credit service gave an answer that cannot be read. Try again later, or contact "
    "support if it persists.":
        "Le service de crédit cloud a donné une réponse illisible. Réessayez plus tard, ou "
        "contactez le support si le problème persiste.",
}

FR = french_table(FR)
