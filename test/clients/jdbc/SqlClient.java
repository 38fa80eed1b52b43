// A JDBC program on ClickHouse's own driver (jdbc-v2, what DBeaver's ClickHouse connection uses) standing in
// for DBeaver and Grafana: it connects to Tally's /clickhouse with an API key, runs the usage summary with
// bound parameters and prints its three numbers as JSON, then a refused statement's error code. Run with the
// JDK's source launcher (no build step) by test/e2e/sql-clients.test.ts.
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class SqlClient {
  public static void main(String[] args) throws Exception {
    String url = args[0], user = args[1], key = args[2], sql = args[3], start = args[4], end = args[5];
    Properties p = new Properties();
    p.setProperty("user", user);
    p.setProperty("password", key);
    // The driver asks for ClickHouse's own LZ4 block framing by default (compress=1); /clickhouse offers HTTP
    // compression instead (docs/sql.md), as DBeaver's connection settings allow.
    p.setProperty("compress", "false");
    try (Connection c = new com.clickhouse.jdbc.Driver().connect(url, p)) {
      try (PreparedStatement s = c.prepareStatement(sql)) {
        // The summary's query takes (end, start, end): users up to the end, activity within the range.
        s.setString(1, end);
        s.setString(2, start);
        s.setString(3, end);
        try (ResultSet r = s.executeQuery()) {
          r.next();
          System.out.println("{\"total_users\":" + r.getLong(1) + ",\"active_users\":" + r.getLong(2)
              + ",\"total_sessions\":" + r.getLong(3) + "}");
        }
      }
      try (Statement s = c.createStatement()) {
        s.executeQuery("SELECT * FROM system.query_log");
        System.out.println("refused: none");
      } catch (SQLException e) {
        System.out.println("refused: " + e.getErrorCode());
      }
    }
  }
}
