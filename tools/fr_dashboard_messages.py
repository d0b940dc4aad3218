"""French texts of the dashboard panel (tools/update_dashboard_catalog.py writes django.po).

The vocabulary of docs/translations.md: crédit cloud, bon d'achat (voucher), bon de
commande (purchase order), HT (amounts before tax).
"""

FR = {
    "Credits & Vouchers": "Crédits et bons d'achat",
    "Rating": "Tarification",
    "Voucher": "Bon d'achat",
    "Purchased credit": "Crédit acheté",
    "Active": "Actif",
    "Used up": "Épuisé",
    "Expired": "Expiré",
    "Voided": "Annulé",
    "Pending payment": "En attente de paiement",
    "Paid": "Payé",
    "Cancelled": "Abandonné",
    "Amount": "Montant",
    "The amount of credit to buy, before tax. You pay it on the payment page; the credit "
    "appears once paid.":
        "Le montant de crédit à acheter, HT. Vous le payez sur la page de paiement ; le "
        "crédit apparaît une fois payé.",
    "Write an amount as a number, for example 50.00.":
        "Écrivez le montant en chiffres, par exemple 50.00.",
    "The amount must be more than zero.": "Le montant doit être supérieur à zéro.",
    "%(currency)s amounts have at most %(places)d decimals.":
        "Les montants en %(currency)s ont au plus %(places)d décimales.",
    "This voucher code is unknown. Check the code and try again.":
        "Ce code de bon d'achat est inconnu. Vérifiez le code et réessayez.",
    "This voucher has already been used.": "Ce bon d'achat a déjà été utilisé.",
    "This voucher has expired or was withdrawn.": "Ce bon d'achat a expiré ou a été retiré.",
    "This voucher is in another currency than your project's credit.":
        "Ce bon d'achat est dans une autre devise que le crédit de votre projet.",
    "Vouchers cannot be checked right now: try again in a few minutes.":
        "Les bons d'achat ne peuvent pas être vérifiés pour le moment : réessayez dans "
        "quelques minutes.",
    "Too many wrong voucher codes were tried on this project: you can try again after "
    "%(time)s":
        "Trop de codes de bon d'achat erronés ont été essayés sur ce projet : vous pourrez "
        "réessayer après le %(time)s",
    "Too many wrong voucher codes were tried on this project. Try again later.":
        "Trop de codes de bon d'achat erronés ont été essayés sur ce projet. Réessayez "
        "plus tard.",
    "Voucher code": "Code du bon d'achat",
    "The code printed on your voucher, for example WELCOME-2026.":
        "Le code inscrit sur votre bon d'achat, par exemple WELCOME-2026.",
    "Voucher activated: %(amount)s of credit.": "Bon d'achat activé : %(amount)s de crédit.",
    "Reason": "Motif",
    "Why the credit is voided (kept in its ledger), for example a charge-back.":
        "Pourquoi le crédit est annulé (conservé dans son historique), par exemple une "
        "rétrofacturation.",
    "The credit is voided.": "Le crédit est annulé.",
    "Add credit": "Ajouter du crédit",
    "Add a voucher": "Ajouter un bon d'achat",
    "Void": "Annuler",
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
    "Status": "État",
    "Credits, in the order they are used": "Crédits, dans l'ordre où ils sont utilisés",
    "Expired and voided credits": "Crédits expirés et annulés",
    "Pay this order": "Payer ce bon de commande",
    "Order": "Bon de commande",
    "Created": "Créé le",
    "Payment": "Paiement",
    "Purchase orders": "Bons de commande",
    "Unable to list the credits: %s": "Impossible de lister les crédits : %s",
    "Unable to list the purchase orders: %s": "Impossible de lister les bons de commande : %s",
    "%(amount)s of your credit will expire unused on %(date)s: at your current usage it "
    "will not be spent before then.":
        "%(amount)s de votre crédit expireront sans être utilisés le %(date)s : à votre "
        "consommation actuelle, ils ne seront pas dépensés d'ici là.",
    "Create the purchase order": "Créer le bon de commande",
    "Activate": "Activer",
    "Void a credit": "Annuler un crédit",
    "Purchase order": "Bon de commande",
    "Unable to show the order: %s": "Impossible d'afficher le bon de commande : %s",
    "Buying credit makes a purchase order. Pay it on the payment page: the credit appears "
    "in your list once the payment is confirmed.":
        "Acheter du crédit crée un bon de commande. Payez-le sur la page de paiement : le "
        "crédit apparaît dans votre liste une fois le paiement confirmé.",
    "Purchased credit is valid 13 months. Vouchers are used before purchased credit.":
        "Le crédit acheté est valable 13 mois. Les bons d'achat sont utilisés avant le "
        "crédit acheté.",
    "A voucher adds its credit to this project at once. Vouchers are used before "
    "purchased credit.":
        "Un bon d'achat ajoute son crédit à ce projet immédiatement. Les bons d'achat sont "
        "utilisés avant le crédit acheté.",
    "A voided credit pays nothing more. What it already paid stays paid.":
        "Un crédit annulé ne paie plus rien. Ce qu'il a déjà payé reste payé.",
    "Project ID": "ID du projet",
    "Show this project": "Afficher ce projet",
    "This order is paid: its credit is in your list.":
        "Ce bon de commande est payé : son crédit est dans votre liste.",
    "Pay before": "À payer avant le",
    "Back to Credits & Vouchers": "Retour aux crédits et bons d'achat",
    "Your purchase order is waiting for payment. The credit appears once paid.":
        "Votre bon de commande attend son paiement. Le crédit apparaît une fois payé.",
    "no %(service)s endpoint in the catalog: %(error)s":
        "aucun point d'accès %(service)s dans le catalogue : %(error)s",
    "The credit service did not answer in time. Try again in a few minutes.":
        "Le service de crédit cloud n'a pas répondu à temps. Réessayez dans quelques minutes.",
    "The credit service cannot be reached. Try again in a few minutes.":
        "Le service de crédit cloud est injoignable. Réessayez dans quelques minutes.",
}
