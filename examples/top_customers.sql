-- Customers by total spend, with their support rep: the Chinook sample database.
SELECT c.CustomerId AS customer_id,
       c.FirstName || ' ' || c.LastName AS customer,
       c.Country AS country,
       e.FirstName || ' ' || e.LastName AS support_rep,
       COUNT(DISTINCT i.InvoiceId) AS invoices,
       ROUND(SUM(i.Total), 2) AS total_spent,
       MAX(i.InvoiceDate) AS last_invoice
FROM Customer c
JOIN Invoice i ON i.CustomerId = c.CustomerId
LEFT JOIN Employee e ON e.EmployeeId = c.SupportRepId
GROUP BY c.CustomerId
ORDER BY total_spent DESC
